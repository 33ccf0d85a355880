"""The Responses and Messages body translators, without a server: any JSON a client can send
either becomes a valid ChatRequest or is an InvalidRequest that names a field (a 400), never
another exception (a 500). Bodies are drawn around the real shapes, with every item and block
type, wrong types and unknown ones mixed in."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jarvis.errors import InvalidRequest
from jarvis.http.anthropic.schema import MessagesBody
from jarvis.http.anthropic.schema import chat_request as messages_request
from jarvis.http.responses.schema import ResponsesBody
from jarvis.http.responses.schema import chat_request as responses_request
from jarvis.sampling import SamplingParams

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "hi", "{}", "x" * 70]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.sampled_from(["type", "text", "a"]), inner,
                                                                     max_size=3)), max_leaves=8)
SCHEMA = st.one_of(st.just({"type": "object", "properties": {"city": {"type": "string"}}}), JSON)


def typed(types: list[str], fields: dict) -> st.SearchStrategy:
    return st.fixed_dictionaries({"type": st.sampled_from(types)},
                                 optional={k: st.one_of(v, JSON) for k, v in fields.items()})


PART = typed(["input_text", "output_text", "text", "input_image", "refusal", "video"], {"text": st.just("hi")})
ITEM = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "developer", "robot"])},
                          optional={"content": st.one_of(st.just("hi"), st.lists(PART, max_size=2), JSON)}),
    typed(["message", "function_call", "function_call_output", "reasoning", "item_reference", "web_search_call"],
          {"role": st.sampled_from(["user", "assistant"]), "content": st.just("hi"), "call_id": st.just("c1"),
           "name": st.just("f"), "arguments": st.sampled_from(["{}", "{oops", '{"city": "Paris"}']),
           "output": st.just("done")}),
    JSON)
TOOL = st.one_of(st.fixed_dictionaries({"type": st.just("function"), "name": st.sampled_from(["f", "bad name!"])},
                                       optional={"parameters": SCHEMA}),
                 typed(["function", "web_search", "mcp"], {"name": st.sampled_from(["f", "bad name!"]),
                                                           "parameters": SCHEMA}), JSON)
RESPONSES = st.fixed_dictionaries({}, optional={
    "input": st.one_of(st.just("Hi"), st.lists(ITEM, max_size=4), JSON), "instructions": st.one_of(st.just("Be"), JSON),
    "tools": st.one_of(st.lists(TOOL, max_size=2), JSON),
    "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required", "sometimes"]),
                             st.just({"type": "function", "name": "f"}), JSON),
    "text": st.one_of(st.just({"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}), JSON),
    "max_output_tokens": st.one_of(st.integers(-1, 5), JSON), "n": st.integers(0, 3), "truncation": JSON})

BLOCK_TEXT = typed(["text", "image"], {"text": st.just("ok")})
BLOCK = typed(["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "hologram"],
              {"text": st.just("hi"), "id": st.just("t1"), "name": st.just("f"), "input": st.just({"city": "P"}),
               "tool_use_id": st.just("t1"), "content": st.one_of(st.just("ok"), st.lists(BLOCK_TEXT, max_size=2)),
               "thinking": st.just("hm")})
MESSAGE = st.one_of(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                                           "content": st.one_of(st.just("hi"), st.lists(BLOCK, max_size=3), JSON)}),
                    JSON)
MESSAGES = st.fixed_dictionaries({}, optional={
    "max_tokens": st.one_of(st.integers(-1, 5), JSON), "messages": st.one_of(st.lists(MESSAGE, max_size=4), JSON),
    "system": st.one_of(st.just("Be"), st.lists(BLOCK_TEXT, max_size=2), JSON),
    "tools": st.one_of(st.lists(st.one_of(st.fixed_dictionaries({"name": st.sampled_from(["f", "bad name!"]),
                                                                 "input_schema": SCHEMA}),
                                          typed(["web_search_20250305", "custom"], {"name": st.just("g")}), JSON),
                                max_size=2), JSON),
    "tool_choice": st.one_of(typed(["auto", "any", "tool", "none", "maybe"], {"name": st.sampled_from(["f", "z"])}),
                             JSON),
    "stop_sequences": st.one_of(st.lists(st.just("."), max_size=2), JSON), "thinking": JSON})


def translated_or_400(parse, translate, body) -> None:
    try:
        translate(parse(body))
    except InvalidRequest as e:
        assert str(e) and e.field is None or isinstance(e.field, str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RESPONSES, st.sampled_from(["reject", "drop"]))
def test_any_responses_body_is_a_request_or_a_400(body, policy):
    translated_or_400(ResponsesBody.parse, lambda b: responses_request(b, [], SamplingParams(), policy), body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES, st.sampled_from(["reject", "drop"]))
def test_any_messages_body_is_a_request_or_a_400(body, policy):
    translated_or_400(MessagesBody.parse, lambda b: messages_request(b, SamplingParams(), policy), body)
