"""/v1/responses through the REAL official `openai` client against a real Runtime on 127.0.0.1:0.

What Codex-style clients rely on: create and stream (the SDK's own accumulator rebuilds the
response from our numbered events), stored responses continued with previous_response_id (the
KV prefix reused: cached_tokens), a forced function call and its output fed back, text.format
parsed by responses.parse, retrieve / delete / cancel, hostile bodies as OpenAI-shaped 400s;
and the reasoning split in Responses and in chat completions (forced by a grammar: the bundled
model never thinks on its own).
"""

from __future__ import annotations

import json
import threading

import aiohttp
import openai
import pytest
from pydantic import BaseModel

from bench.support.server import ServerThread
from bench.support.settings import make_settings

THINK_GBNF = 'root ::= "<think>\\nThe user wants a greeting.\\n</think>\\n\\nHello there!"'
# Greedy: a sampled path through the grammar may spell the text in more tokens than max_tokens allows.
THINK = {"grammar": THINK_GBNF, "temperature": 0}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerThread(make_settings(tmp_path_factory.mktemp("responses-data"))) as s:
        yield s


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=600) as c:
        yield c


def post(server, body, path="/v1/responses") -> tuple[int, dict]:
    async def go():
        async with aiohttp.ClientSession() as session:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            async with session.post(server.url + path, data=data, headers={"Content-Type": "application/json"}) as r:
                return r.status, await r.json(content_type=None)
    return server.call(go())


# ---- the happy paths -----------------------------------------------------------------------
def test_create_answers_with_a_message_item_and_usage(client, server):
    r = client.responses.create(model=server.model, input="Name a color.", instructions="You are terse.",
                                max_output_tokens=12, temperature=0, metadata={"run": "1"})
    assert r.object == "response" and r.id.startswith("resp_") and r.model == server.model
    assert r.status in ("completed", "incomplete") and r.output_text
    assert [item.type for item in r.output] == ["message"] and r.output[0].content[0].type == "output_text"
    assert 0 < r.usage.output_tokens <= 12 and r.usage.input_tokens > 5
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.metadata == {"run": "1"} and r.instructions == "You are terse."
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens"


def test_stream_deltas_add_up_to_the_output_text(client):
    kw = dict(model="", input="Write one sentence about the sea.", max_output_tokens=16, temperature=0)
    deltas, numbers = [], []
    with client.responses.stream(**kw) as stream:
        for event in stream:
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            last = event
    assert numbers == list(range(len(numbers)))  # every event numbered, in order
    assert last.type in ("response.completed", "response.incomplete")
    assert "".join(deltas) == last.response.output_text and deltas
    whole = client.responses.create(**kw, extra_body={"cache": False})
    assert whole.output_text == "".join(deltas)  # greedy: the same tokens either way


def test_previous_response_id_continues_and_reuses_the_prefix(client):
    first = client.responses.create(model="", input="My name is Ada. Say hello.", max_output_tokens=12,
                                    temperature=0, extra_body={"cache": False})
    second = client.responses.create(model="", input="What is my name?", previous_response_id=first.id,
                                     max_output_tokens=12, temperature=0, extra_body={"cache": False})
    third = client.responses.create(model="", input="Say it again.", previous_response_id=second.id,
                                    max_output_tokens=12, temperature=0, extra_body={"cache": False})
    assert third.previous_response_id == second.id
    assert first.usage.input_tokens < second.usage.input_tokens < third.usage.input_tokens  # the history grows
    assert third.usage.input_tokens_details.cached_tokens > 0  # the earlier turns' KV cells were reused
    items = client.responses.input_items.list(third.id, order="asc").data
    assert [(i.role, i.content[0].text) for i in items] == [("user", "Say it again.")]


def test_a_forced_function_call_and_its_output_fed_back(client):
    r = client.responses.create(model="", input="What is the weather in Paris?", tools=[WEATHER],
                                tool_choice={"type": "function", "name": "get_weather"}, max_output_tokens=40,
                                temperature=0)
    calls = [item for item in r.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and r.status == "completed"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    answer = client.responses.create(model="", previous_response_id=r.id, tools=[WEATHER], max_output_tokens=16,
                                     temperature=0, input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                                                            "output": "Sunny, 24 degrees."}])
    assert answer.output_text and answer.usage.input_tokens > r.usage.input_tokens

    with client.responses.stream(model="", input="What is the weather in Paris?", tools=[WEATHER],
                                 tool_choice="required", max_output_tokens=40, temperature=0,
                                 extra_body={"cache": False}) as stream:
        arguments = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    streamed = [item for item in final.output if item.type == "function_call"]
    assert streamed and streamed[0].arguments == arguments and json.loads(arguments)["city"]


class Color(BaseModel):
    name: str
    hex: str


def test_text_format_json_schema_parses_into_a_pydantic_model(client):
    r = client.responses.parse(model="", input="Give a color as JSON.", text_format=Color, max_output_tokens=60,
                               temperature=0)
    assert isinstance(r.output_parsed, Color)


def test_retrieve_delete_and_cancel_a_running_stream(client, server):
    stored = client.responses.create(model="", input="Say hi.", max_output_tokens=4, temperature=0)
    assert client.responses.retrieve(stored.id).output_text == stored.output_text
    assert client.responses.delete(stored.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(stored.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(stored.id)

    started = threading.Event()
    seen: list = []

    def consume(stream):
        for event in stream:
            seen.append(event)
            if event.type == "response.output_text.delta":
                started.set()

    # A grammar that never lets the answer end (only max_output_tokens does): the response is still running when it is cancelled.
    stream = client.responses.create(model="", input="Sing.", stream=True, max_output_tokens=3000, temperature=0,
                                     extra_body={"cache": False, "grammar": 'root ::= "la " root'})
    reader = threading.Thread(target=consume, args=(stream,))
    reader.start()
    assert started.wait(300)
    response_id = seen[0].response.id
    assert client.responses.retrieve(response_id).status == "in_progress"  # stored while it runs
    cancelled = client.responses.cancel(response_id)
    reader.join(300)
    assert cancelled.status == "cancelled" and cancelled.id == response_id
    assert seen[-1].type == "response.failed" and seen[-1].response.status == "cancelled"
    assert client.responses.retrieve(response_id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(response_id)  # no longer running


# ---- reasoning -----------------------------------------------------------------------------
def test_reasoning_is_its_own_output_item_whole_and_streamed(client):
    r = client.responses.create(model="", input="Greet me.", max_output_tokens=40, extra_body=THINK)
    assert [item.type for item in r.output] == ["reasoning", "message"]
    assert r.output[0].content[0].text == "The user wants a greeting." and r.output_text == "Hello there!"
    with client.responses.stream(model="", input="Greet me.", max_output_tokens=40,
                                 extra_body={**THINK, "cache": False}) as stream:
        thought = "".join(e.delta for e in stream if e.type == "response.reasoning_text.delta")
        final = stream.get_final_response()
    assert thought == "The user wants a greeting." and final.output_text == "Hello there!"


def test_chat_completions_send_reasoning_content_and_reasoning(client):
    kw = dict(model="", messages=[{"role": "developer", "content": "Be kind."}, {"role": "user", "content": "Greet me."}],
              max_completion_tokens=40)
    whole = client.chat.completions.create(**kw, extra_body=THINK).choices[0].message
    assert whole.content == "Hello there!"
    assert whole.model_extra["reasoning_content"] == whole.model_extra["reasoning"] == "The user wants a greeting."
    chunks = list(client.chat.completions.create(**kw, stream=True, extra_body={**THINK, "cache": False}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas) == "The user wants a greeting."
    assert "".join((d.model_extra or {}).get("reasoning") or "" for d in deltas) == "The user wants a greeting."
    assert "".join(d.content or "" for d in deltas) == "Hello there!"


# ---- hostile bodies ------------------------------------------------------------------------
HOSTILE = [
    ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input_image", "input[0].content[0].type"),
    ({"input": [{"type": "hologram"}]}, "hologram", "input[0]"),
    ({"input": [{"role": "robot", "content": "hi"}]}, "role", "input[0].role"),
    ({"input": [{"type": "function_call", "name": "f"}]}, "call_id", "input[0].call_id"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "must follow", None),
    ({"input": [{"role": "user", "content": "hi"},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{oops"},
                {"type": "function_call_output", "call_id": "c", "output": "x"}]}, "not valid JSON", None),
    ({"input": 42}, "input", "input"),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "web_search", "tools[0].type"),
    ({"input": "hi", "tools": [{"type": "function"}]}, "name", "tools[0].name"),
    ({"input": "hi", "tools": [{"type": "function", "name": "bad name!"}]}, "must be 1-64", "tools[0].name"),
    ({"input": "hi", "tools": [WEATHER, WEATHER]}, "used twice", "tools[1].name"),
    ({"input": "hi", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "nope", "tool_choice"),
    ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice", "tool_choice"),
    ({"input": "hi", "text": {"format": {"type": "yaml"}}}, "format", "text.format.type"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens", "max_output_tokens"),
    ({"input": "hi", "n": 2}, "n = 2", "n"),
    ({"input": "hi", "previous_response_id": "resp_missing"}, "resp_missing", "previous_response_id"),
    ({"input": ""}, "no messages", None),
    ({"input": [{"role": "user", "content": "hi"}] * 10_001}, "10000", None),
    ({"input": "hi", "grammar": "root ::= ("}, "grammar", None),
    ([1], "JSON object", None),
]


@pytest.mark.parametrize("body, mentions, param", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_malformed_bodies_are_400s_in_openais_shape(server, body, mentions, param):
    status, answer = post(server, body)
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error" and mentions in answer["error"]["message"], answer
    if param:
        assert answer["error"]["param"] == param


def test_ten_thousand_items_and_unknown_fields_are_served(server):
    items = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 5_000
    status, answer = post(server, {"input": items, "max_output_tokens": 2, "temperature": 0,
                                   "some_future_field": {"x": 1}, "truncation": "disabled"})
    assert status == 400 and answer["error"]["code"] == "context_length_exceeded"  # said clearly, in one tokenize
    status, answer = post(server, {"input": items[-40:], "max_output_tokens": 2, "temperature": 0,
                                   "some_future_field": {"x": 1}, "truncation": "auto"})
    assert status == 200 and answer["status"] in ("completed", "incomplete")
    status, answer = post(server, {"input": "hi", "max_output_tokens": 2, "tools": [
        {**WEATHER, "parameters": {"type": "object", "description": "x" * 1_000_000}}]})
    assert status in (400, 413) and "error" in answer  # the body limit or the schema limit, never a 500


def test_unknown_ids_are_404s(client):
    for call in (client.responses.retrieve, client.responses.delete, client.responses.cancel,
                 client.responses.input_items.list):
        with pytest.raises(openai.NotFoundError):
            call("resp_nope")


def test_unsupported_tools_are_dropped_when_the_setting_says_so(tmp_path):
    with ServerThread(make_settings(tmp_path, JARVIS_SERVER_UNSUPPORTED_TOOLS="drop")) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=600) as client:
            raw = client.responses.with_raw_response.create(
                model="", input="Hi", max_output_tokens=2, temperature=0,
                tools=[{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["v"]}, WEATHER])
            assert raw.headers["X-JARVIS-Dropped-Tools"] == "web_search, file_search"
            assert raw.parse().status in ("completed", "incomplete")
