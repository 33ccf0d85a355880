"""/v1/messages through the REAL official `anthropic` SDK against a real Runtime on 127.0.0.1:0.

What Claude-Code-style clients rely on: create and stream (the SDK's own accumulator rebuilds the
message from our events), system, stop_sequences, a forced tool_use and the tool_result turn,
count_tokens, Anthropic-shaped errors, the x-api-key header; and thinking split into its own
block (forced by a grammar: the bundled model never thinks on its own). Temperature 0 (this SDK
no longer has the parameter: it goes in extra_body) and small max_tokens keep it fast.
"""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest

from bench.support.server import ServerThread
from bench.support.settings import make_settings

GREEDY = {"temperature": 0}
THINK = {"temperature": 0, "grammar": 'root ::= "<think>\\nThe user wants a greeting.\\n</think>\\n\\nHello there!"'}
WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ASK = [{"role": "user", "content": "Name a color."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A larger body limit than the default so the 1 MB tool schema reaches the API, not the limit.
    with ServerThread(make_settings(tmp_path_factory.mktemp("messages-data"), JARVIS_SERVER_MAX_BODY_KB="4096")) as s:
        yield s


@pytest.fixture
def client(server):
    with anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=600) as c:
        yield c


def post(server, body, path="/v1/messages", headers=None) -> tuple[int, dict]:
    async def go():
        async with aiohttp.ClientSession() as session:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            async with session.post(server.url + path, data=data, headers={"Content-Type": "application/json",
                                                                            **(headers or {})}) as r:
                return r.status, await r.json(content_type=None)
    return server.call(go())


def assert_anthropic_error(status: int, body: dict, expected_status: int = 400, mentions: str = "") -> None:
    assert status == expected_status, body
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == {400: "invalid_request_error", 401: "authentication_error",
                                     404: "not_found_error"}[expected_status]
    assert mentions in body["error"]["message"]


# ---- the happy paths -----------------------------------------------------------------------
def test_create_answers_in_anthropics_shape(client, server):
    m = client.messages.create(model=server.model, max_tokens=12, system="You are terse.", messages=ASK,
                               extra_body=GREEDY)
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_") and m.model == server.model
    assert [b.type for b in m.content] == ["text"] and m.content[0].text
    assert m.stop_reason in ("end_turn", "max_tokens") and m.stop_sequence is None
    assert 0 < m.usage.output_tokens <= 12 and m.usage.input_tokens > 5


def test_system_reaches_the_model(client):
    kw = dict(model="", max_tokens=8, messages=ASK, extra_body={**GREEDY, "cache": False})
    short = client.messages.count_tokens(model="", system="You are a pirate.", messages=ASK)
    longer = client.messages.count_tokens(model="", system=[{"type": "text", "text": "You are a pirate. " * 5}],
                                          messages=ASK)
    assert longer.input_tokens > short.input_tokens  # the system text (a string or blocks) is in the prompt
    assert client.messages.create(**kw).usage.input_tokens == client.messages.count_tokens(
        model="", messages=ASK).input_tokens


def test_stream_text_adds_up_to_the_final_message(client):
    with client.messages.stream(model="", max_tokens=16, messages=ASK, extra_body=GREEDY) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and [b.type for b in final.content] == ["text"] and final.content[0].text == text
    assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens > 0
    whole = client.messages.create(model="", max_tokens=16, messages=ASK, extra_body={**GREEDY, "cache": False})
    assert whole.content[0].text == text  # greedy: the same tokens either way


def test_stop_sequences_end_the_answer_with_stop_sequence(client):
    free = client.messages.create(model="", max_tokens=24, messages=ASK, extra_body=GREEDY).content[0].text
    words = free.split()
    stop = words[len(words) // 2]
    cut = free[:free.index(stop)]
    m = client.messages.create(model="", max_tokens=24, messages=ASK, stop_sequences=["zzz-never", stop],
                               extra_body=GREEDY)
    assert (m.stop_reason, m.stop_sequence, m.content[0].text) == ("stop_sequence", stop, cut)
    with client.messages.stream(model="", max_tokens=24, messages=ASK, stop_sequences=[stop],
                                extra_body=GREEDY) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence, final.content[0].text) == ("stop_sequence", stop, cut)
    # Without the stop string in the answer it is an ordinary end.
    m = client.messages.create(model="", max_tokens=6, messages=ASK, stop_sequences=["zzz-never"], extra_body=GREEDY)
    assert m.stop_reason == "max_tokens" and m.stop_sequence is None


def test_a_forced_tool_use_then_the_tool_result_turn(client):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    m = client.messages.create(model="", max_tokens=60, messages=ask, tools=[WEATHER],
                               tool_choice={"type": "tool", "name": "get_weather"}, extra_body=GREEDY)
    assert m.stop_reason == "tool_use"
    uses = [b for b in m.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].id.startswith("toolu_")
    assert isinstance(uses[0].input.get("city"), str)  # the schema's required argument, by the grammar

    with client.messages.stream(model="", max_tokens=60, messages=ask, tools=[WEATHER], tool_choice={"type": "any"},
                                extra_body=GREEDY) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use" and [b.type for b in streamed.content if b.type == "tool_use"]
    assert [b.input for b in streamed.content if b.type == "tool_use"][0]["city"] == uses[0].input["city"]

    history = ask + [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                                   "content": "Sunny, 24 degrees."}]}]
    answer = client.messages.create(model="", max_tokens=20, messages=history, tools=[WEATHER], extra_body=GREEDY)
    assert answer.content[0].type == "text" and answer.stop_reason in ("end_turn", "max_tokens", "tool_use")
    counted = client.messages.count_tokens(model="", messages=history, tools=[WEATHER])
    assert counted.input_tokens == answer.usage.input_tokens  # the tool result is in the prompt


def test_tool_choice_none_answers_in_text(client):
    m = client.messages.create(model="", max_tokens=8, messages=ASK, tools=[WEATHER], tool_choice={"type": "none"},
                               extra_body=GREEDY)
    assert [b.type for b in m.content] == ["text"] and m.stop_reason != "tool_use"


# ---- reasoning -----------------------------------------------------------------------------
def test_thinking_is_its_own_block_whole_and_streamed(client):
    m = client.messages.create(model="", max_tokens=40, messages=ASK, extra_body=THINK)
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in m.content] == [
        ("thinking", "The user wants a greeting."), ("text", "Hello there!")]
    assert m.stop_reason == "end_turn"
    thoughts = []
    with client.messages.stream(model="", max_tokens=40, messages=ASK, extra_body={**THINK, "cache": False}) as stream:
        for event in stream:
            if event.type == "thinking":
                thoughts.append(event.thinking)
        final = stream.get_final_message()
    assert "".join(thoughts) == "The user wants a greeting."
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[1].text == "Hello there!"


# ---- errors ------------------------------------------------------------------------------
def test_missing_max_tokens_is_a_400_in_anthropics_shape(client, server):
    status, body = post(server, {"model": "", "messages": ASK})
    assert_anthropic_error(status, body, 400, "max_tokens")
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="", max_tokens=0, messages=ASK)
    assert caught.value.status_code == 400 and caught.value.body["error"]["type"] == "invalid_request_error"


HOSTILE = [
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "vision"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "vision"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "hologram"}]}]}, "messages[0].content"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "text"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f",
                                                                  "input": {}}]}]}, "assistant messages"),
    ({"max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "tool_result",
                                                                       "tool_use_id": "a"}]}]}, "user messages"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a",
                                                                  "content": [{"type": "image"}]}]}]}, "vision"),
    ({"max_tokens": 5, "messages": [{"role": "robot", "content": "hi"}]}, "role"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": 42}]}, "content"),
    ({"max_tokens": 5, "messages": "hi"}, "messages"),
    ({"max_tokens": 5, "messages": [], "system": "x"}, "user message"),
    ({"max_tokens": 5, "messages": ASK, "system": 7}, "system"),
    ({"max_tokens": "many", "messages": ASK}, "max_tokens"),
    ({"max_tokens": 5, "messages": ASK, "stop_sequences": "x"}, "stop_sequences"),
    ({"max_tokens": 5, "messages": ASK, "tools": [{"description": "no name"}]}, "tools[0].name"),
    ({"max_tokens": 5, "messages": ASK, "tools": [{"name": "bad name!", "input_schema": {}}]}, "tools[0].name"),
    ({"max_tokens": 5, "messages": ASK, "tools": [WEATHER, WEATHER]}, "tools[1].name"),
    ({"max_tokens": 5, "messages": ASK, "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     "web_search_20250305"),
    ({"max_tokens": 5, "messages": ASK, "tools": [WEATHER], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"max_tokens": 5, "messages": ASK, "tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}}, "nope"),
    ({"max_tokens": 5, "messages": ASK, "tool_choice": {"type": "sometimes"}}, "tool_choice"),
    ({"max_tokens": 5, "messages": ASK, "thinking": {"type": "maybe"}}, "thinking"),
    ({"max_tokens": 5, "messages": ASK, "temperature": 3}, "temperature"),
    ({"max_tokens": 5, "messages": ASK, "grammar": "root ::= ("}, "grammar"),
    ([1, 2], "JSON object"),
]


@pytest.mark.parametrize("body, mentions", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_malformed_bodies_are_400s_in_anthropics_shape(server, body, mentions):
    status, answer = post(server, body)
    assert_anthropic_error(status, answer, 400, mentions)


def test_hostile_sizes_and_syntax_are_never_a_500(server):
    status, body = post(server, b"{not json")
    assert_anthropic_error(status, body, 400, "not valid JSON")
    huge = {**WEATHER, "input_schema": {"type": "object", "description": "x" * 1_000_000,
                                        "properties": {"city": {"type": "string"}}}}
    status, body = post(server, {"max_tokens": 5, "messages": ASK, "tools": [huge]})
    assert_anthropic_error(status, body, 400, "larger than 64 KiB")  # a clear limit, not a crash
    blocks = [{"type": "text", "text": "hi "}] * 10_000  # 10,000 blocks: more than the context holds, said clearly
    status, body = post(server, {"max_tokens": 5, "messages": [{"role": "user", "content": blocks}]})
    assert_anthropic_error(status, body, 400, "context")
    status, body = post(server, {"max_tokens": 5, "messages": ASK}, path="/v1/messages/nope")
    assert_anthropic_error(status, body, 404)


def test_count_tokens_counts_the_prompt(client):
    few = client.messages.count_tokens(model="", messages=[{"role": "user", "content": "Hi"}])
    more = client.messages.count_tokens(model="", messages=[{"role": "user", "content": "Hi " * 50}])
    assert 0 < few.input_tokens < more.input_tokens
    with_tools = client.messages.count_tokens(model="", messages=[{"role": "user", "content": "Hi"}], tools=[WEATHER])
    assert with_tools.input_tokens > few.input_tokens  # the tool descriptions are part of the prompt
    # Tokenized, not generated: the same count a generation of that prompt reports as its input.
    asked = client.messages.create(model="", max_tokens=1, messages=[{"role": "user", "content": "Hi " * 50}],
                                   extra_body={**GREEDY, "cache": False})
    assert more.input_tokens == asked.usage.input_tokens


# ---- the token and the unsupported-tools setting ------------------------------------------
def test_x_api_key_is_accepted_where_a_token_is_set_and_server_tools_can_be_dropped(tmp_path):
    settings = make_settings(tmp_path, JARVIS_SERVER_TOKEN="s3cret", JARVIS_SERVER_UNSUPPORTED_TOOLS="drop")
    with ServerThread(settings) as server:
        with anthropic.Anthropic(base_url=server.url, api_key="s3cret", max_retries=0, timeout=600) as good:
            raw = good.messages.with_raw_response.create(
                model="", max_tokens=4, messages=ASK, extra_body=GREEDY,
                tools=[{"type": "web_search_20250305", "name": "web_search"}, WEATHER])
            assert raw.headers["X-JARVIS-Dropped-Tools"] == "web_search_20250305"
            assert raw.parse().content
        with anthropic.Anthropic(base_url=server.url, api_key="wrong", max_retries=0, timeout=600) as bad:
            with pytest.raises(anthropic.AuthenticationError) as caught:
                bad.messages.create(model="", max_tokens=4, messages=ASK)
        assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "authentication_error"
        status, body = post(server, {"max_tokens": 4, "messages": ASK}, headers={"Authorization": "Bearer s3cret"})
        assert status == 200 and body["type"] == "message"
