"""The pure parts of structured output and tool calls, without a model: schema checks, the tool
prompt and parser, the streaming content filter, embedding models in the catalog, the stats line."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.catalog import read_gguf_info
from jarvis.errors import InvalidRequest
from jarvis.http.openai_schema import ChatMessage
from jarvis.tools.plan import ContentFilter, ToolPlan, ToolSpec
from jarvis.json_grammar import schema_grammar, tool_call_grammar
from jarvis.request import RequestRecord
from jarvis.stats_line import stats_line

TOOLS = [ToolSpec.model_validate({"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                          "required": ["city"]}}})]


@pytest.mark.parametrize("schema, field", [
    ({"type": "object", "properties": {"a": {"type": "strin"}}}, "s.properties.a.type"),
    ({"type": "object", "properties": {"a": {"$ref": "https://example.com/x"}}}, "s.properties.a.$ref"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, "s.properties.a.$ref"),
    ({"type": "string", "pattern": "abc"}, "s.pattern"),
    ({"type": "array", "items": [{"type": "integer"}, 3]}, "s.items[1]"),
    ({"anyOf": "nope"}, "s.anyOf"),
    ([1, 2], "s"),
])
def test_unsupported_schemas_name_the_part(schema, field):
    with pytest.raises(InvalidRequest) as e:
        schema_grammar(schema, "s")
    assert e.value.field == field


def test_supported_schemas_become_grammars_with_a_root():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "tags": {"type": "array", "items": {
        "$ref": "#/$defs/Tag"}}}, "required": ["n"], "$defs": {"Tag": {"enum": ["a", "b"]}}}
    assert schema_grammar(schema, "s").count("root ::=") == 1
    both = tool_call_grammar([("f", schema), ("g", {"type": "object"})], "<tool_call>", "</tool_call>", 4)
    assert both.startswith("root ::= call") and "{0,3}" in both


def test_tool_history_renders_into_plain_turns_with_the_tools_section():
    plan = ToolPlan.of(TOOLS, "auto", None)
    messages = [ChatMessage.model_validate(m).to_message() for m in [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Snow"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Wind"}]]
    out = plan.render(tuple(messages))
    assert [m.role for m in out] == ["system", "user", "assistant", "user"]
    assert out[0].content.startswith("Be brief.\n\n# Tools") and '"get_weather"' in out[0].content
    assert out[2].content == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert out[3].content == "<tool_response>\nSnow\n</tool_response>\n<tool_response>\nWind\n</tool_response>"
    bad = ChatMessage.model_validate({"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}]}).to_message()
    with pytest.raises(InvalidRequest) as e:
        plan.render((messages[1], bad))
    assert e.value.field == "messages[1].tool_calls[0].function.arguments"


def test_parse_keeps_anything_that_is_not_a_well_formed_call_as_content():
    plan = ToolPlan.of(TOOLS, "auto", None)
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    content, calls = plan.parse("Let me look.\n" + call)
    assert content == "Let me look." and [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Oslo"})]
    assert plan.parse(call + "\n" + call)[0] is None and len(plan.parse(call + "\n" + call)[1]) == 2
    for text in ["no call here", call[:-3], call.replace("get_weather", "unknown"), call + " and more"]:
        assert plan.parse(text) == (text, [])


CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from(["", "Sure.", "Let me check <tool", "  ", "a<b"]),
       tail=st.sampled_from([CALL, "", " plain words", CALL[:20]]),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_streamed_content_accumulates_to_the_parsed_content(prefix, tail, cuts):
    plan = ToolPlan.of(TOOLS, "auto", None)
    text = prefix + ("\n" if tail == CALL and prefix else "") + tail
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    stream = ContentFilter(plan)
    released = "".join(stream.feed(text[a:b]) for a, b in zip(bounds, bounds[1:]))
    rest, calls = stream.finish()
    content, expected_calls = plan.parse(text)
    assert released + rest == (content or "")
    assert [(c.name, c.arguments) for c in calls] == [(c.name, c.arguments) for c in expected_calls]


def _tiny_gguf(path, arch: str, extra: dict) -> None:
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in extra.items():
        writer.add_uint32(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_embedding_models_are_recognised_by_their_gguf_metadata(tmp_path, model_path):
    _tiny_gguf(tmp_path / "bert.gguf", "bert", {})
    _tiny_gguf(tmp_path / "qwen3-embed.gguf", "qwen3", {"qwen3.pooling_type": 3})
    assert read_gguf_info(tmp_path / "bert.gguf", "bert", "models/").embedding
    assert read_gguf_info(tmp_path / "qwen3-embed.gguf", "q", "models/").embedding
    assert not read_gguf_info(model_path, "smol", "bundled").embedding


def test_the_stats_line_says_when_an_answer_was_constrained():
    t = RequestRecord("req-1", "smol", completion_tokens=12, decode_tokens_per_s=40.0, ttft_ms=80, constrained="JSON")
    assert stats_line(t, "smol").endswith("· warm · JSON")
    assert stats_line(RequestRecord("req-2", "smol", constrained=""), "smol").endswith("· warm")


def test_json_strings_exclude_raw_control_characters():
    # llama-cpp-python's converter lets a raw newline into a string, which no JSON parser accepts.
    grammar = schema_grammar({"type": "object", "properties": {"a": {"type": "string"}}}, "s")
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in grammar
