"""A thinking budget ends a reasoning model's `<think>` block with `</think>` when it is spent, in
all three APIs that take one (chat's reasoning_effort, Responses' reasoning.effort, Messages'
thinking.budget_tokens), proven by counting the thinking tokens.

The bundled model never thinks on its own: a grammar makes it open `<think>` and think in free
text, then answer "Hello there!". Asked for a story with no budget, it thinks for more tokens than
the budget before it closes the block itself (checked first, so the budget is what ends it; how
long it thinks then depends on the CPU's kernels: to max_tokens on some machines, 9 tokens on
others). Greedy decoding: the same prompt thinks the same tokens in every run, so a budgeted
reply's thinking is the head of the unbudgeted one.
"""

from __future__ import annotations

import anthropic
import openai
import pytest

from bench.support.server import ServerThread
from bench.support.settings import make_settings
from jarvis.config import ReasoningSettings
from jarvis.engine.thinking import CloseTags, ThinkingBudget
from jarvis.http.anthropic.schema import MessagesBody, chat_request as messages_request
from jarvis.remote.wire import request_args
from jarvis.sampling import SamplingParams

THINK_FREELY = 'root ::= "<think>" [a-zA-Z ,.\']+ "</think>" "\\n\\nHello there!"'
STORY = [{"role": "user", "content": "Tell me a story."}]
GREEDY = {"temperature": 0, "max_tokens": 60}
BUDGET = 5  # [reasoning] minimal, for this server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("thinking-data"), JARVIS_REASONING_MINIMAL=str(BUDGET))
    with ServerThread(settings) as s:
        yield s


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=600) as c:
        yield c


def chat(client, server, grammar=THINK_FREELY, **kw):
    return client.chat.completions.create(model=server.model, messages=STORY, **GREEDY, **kw,
                                          extra_body={"grammar": grammar, "cache": False})


def reasoning(message) -> str:
    return message.model_extra.get("reasoning_content") or ""


@pytest.fixture(scope="module")
def unbudgeted(server):
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=600) as c:
        return chat(c, server)


def test_without_a_budget_the_model_thinks_past_the_budget(unbudgeted):
    choice = unbudgeted.choices[0]
    assert unbudgeted.usage.completion_tokens_details.reasoning_tokens > BUDGET
    assert choice.finish_reason == "length" or choice.message.content == "Hello there!"


def test_reasoning_effort_ends_the_thinking_at_its_budget_and_the_answer_follows(client, server, unbudgeted):
    r = chat(client, server, reasoning_effort="minimal")
    choice = r.choices[0]
    assert r.usage.completion_tokens_details.reasoning_tokens == BUDGET
    assert choice.finish_reason == "stop" and choice.message.content == "Hello there!"
    thought = reasoning(choice.message)
    unbudgeted_thought = reasoning(unbudgeted.choices[0].message)
    assert thought and unbudgeted_thought.startswith(thought) and thought != unbudgeted_thought

    # Streamed: the same thinking in reasoning deltas, then the answer, and the count in usage.
    parts, answer, usage = [], [], None
    for event in chat(client, server, reasoning_effort="minimal", stream=True, stream_options={"include_usage": True}):
        usage = event.usage or usage
        for c in event.choices:
            parts.append(c.delta.model_extra.get("reasoning_content") or "")
            answer.append(c.delta.content or "")
    assert "".join(parts) == thought and "".join(answer) == "Hello there!"
    assert usage.completion_tokens_details.reasoning_tokens == BUDGET


def test_effort_none_closes_the_block_as_it_opens(client, server):
    r = chat(client, server, grammar=THINK_FREELY.replace("]+", "]*"), reasoning_effort="none")
    assert r.usage.completion_tokens_details.reasoning_tokens == 0
    assert not reasoning(r.choices[0].message) and r.choices[0].message.content == "Hello there!"


def test_a_grammar_that_never_closes_the_block_wins_over_the_budget(client, server):
    # `</think>` is not allowed here: the forced token is refused, never taken, and the model
    # goes on thinking (a grammar the request asked for is the stronger promise).
    r = chat(client, server, grammar='root ::= "<think>" [a-z ]+', reasoning_effort="minimal")
    assert r.choices[0].finish_reason == "length" and not r.choices[0].message.content
    assert r.usage.completion_tokens_details.reasoning_tokens > BUDGET


def test_responses_reasoning_effort_ends_the_thinking_at_its_budget(client, server, unbudgeted):
    r = client.responses.create(model=server.model, input="Tell me a story.", temperature=0, max_output_tokens=60,
                                reasoning={"effort": "minimal"}, extra_body={"grammar": THINK_FREELY, "cache": False})
    assert [item.type for item in r.output] == ["reasoning", "message"] and r.output_text == "Hello there!"
    assert r.usage.output_tokens_details.reasoning_tokens == BUDGET
    assert r.output[0].content[0].text == reasoning(chat(client, server, reasoning_effort="minimal").choices[0].message)


def test_messages_budget_tokens_end_the_thinking_whole_and_streamed(client, server):
    with anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=600) as claude:
        def ask(budget: int, **kw):
            return dict(model=server.model, max_tokens=60, messages=STORY,
                        thinking={"type": "enabled", "budget_tokens": budget},
                        extra_body={"temperature": 0, "grammar": THINK_FREELY, "cache": False}, **kw)

        m = claude.messages.create(**ask(BUDGET))
        assert [b.type for b in m.content] == ["thinking", "text"] and m.content[1].text == "Hello there!"
        assert m.stop_reason == "end_turn"
        # The same greedy thinking that chat completions counted as BUDGET tokens.
        assert m.content[0].thinking == reasoning(chat(client, server, reasoning_effort="minimal").choices[0].message)
        shorter = claude.messages.create(**ask(2)).content[0].thinking
        assert shorter and m.content[0].thinking.startswith(shorter) and shorter != m.content[0].thinking

        with claude.messages.stream(**ask(BUDGET)) as stream:
            thoughts = [e.thinking for e in stream if e.type == "thinking"]
            final = stream.get_final_message()
        assert "".join(thoughts) == m.content[0].thinking and final.content[1].text == "Hello there!"


# ---- the pieces, without a model ------------------------------------------------------------
def tokens_of(text: str) -> list[int]:
    return [ord(ch) for ch in text]  # one token per character: the pieces are easy to follow


def follow(budget: int | None, pieces: list[str]) -> tuple[ThinkingBudget, list[str]]:
    """Feed `pieces` as tokens, taking a forced token instead whenever the budget names one."""
    watch = ThinkingBudget(budget, CloseTags(tokens_of))
    taken: list[str] = []
    queue = list(pieces)
    while queue or watch.forced() is not None:
        forced = watch.forced()
        piece = chr(forced) if forced is not None else queue.pop(0)
        watch.took(forced if forced is not None else -2, piece.encode())
        taken.append(piece)
        if "".join(taken).endswith("</think>"):
            break
    return watch, taken


def test_a_natural_close_is_not_counted_as_thinking():
    watch, _ = follow(None, ["<think>", "a", " b", " c", "</", "think", ">", "Hi"])
    assert watch.tokens == 3 and not watch.thinking


def test_the_budget_finishes_a_close_the_model_had_begun():
    watch, taken = follow(2, ["<think>", "a", "</", "b", "c"])
    assert "".join(taken) == "<think>a</think>" and watch.tokens == 1  # "</" was the tag's start


def test_a_reply_without_a_think_block_is_never_forced():
    watch, taken = follow(0, ["Hello", " <think>", "x"])
    assert taken == ["Hello", " <think>", "x"] and watch.tokens == 0


def test_budget_tokens_tell_a_remote_server_the_effort_that_covers_them():
    body = MessagesBody.parse({"max_tokens": 50, "messages": STORY, "thinking": {"type": "enabled", "budget_tokens": 900}})
    request, _, _ = messages_request(body, SamplingParams(), "reject", reasoning=ReasoningSettings())
    assert request.options.reasoning_budget == 900 and request.options.reasoning_effort == "medium"
    assert request_args(request, "upstream-model")["reasoning_effort"] == "medium"
    off = MessagesBody.parse({"max_tokens": 50, "messages": STORY, "thinking": {"type": "disabled"}})
    assert messages_request(off, SamplingParams(), "reject")[0].options.reasoning_budget == 0
    plain = MessagesBody.parse({"max_tokens": 50, "messages": STORY})
    request = messages_request(plain, SamplingParams(), "reject")[0]
    assert request.options.reasoning_budget is None and "reasoning_effort" not in request_args(request, "m")
