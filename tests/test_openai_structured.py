"""Structured output and tool calls through the REAL official `openai` client, on the real bundled
model. SmolLM2-135M is far too small to write valid JSON on its own: grammar constraints are what
make every answer here parse and validate. Requests run 4 at a time (the engine's batch) to keep
the module short; answers that must be generated twice pass `cache: false`."""

from __future__ import annotations

import enum
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import openai
import pytest
from pydantic import BaseModel, Field

from bench.support.server import ServerThread
from bench.support.settings import make_settings

NO_CACHE = {"cache": False}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerThread(make_settings(tmp_path_factory.mktemp("structured-data"))) as s:
        yield s


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300) as c:
        yield c


def in_parallel(fn, items, workers: int = 4):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


# ---- three schemas: nested objects, arrays, enums, required and optional fields ------------
class Address(BaseModel):
    city: str = Field(max_length=30)
    country: str = Field(max_length=30)


class Person(BaseModel):
    name: str = Field(max_length=30)
    age: int
    address: Address


class Difficulty(str, enum.Enum):
    easy = "easy"
    medium = "medium"
    hard = "hard"


class Recipe(BaseModel):
    title: str = Field(max_length=40)
    ingredients: list[str] = Field(min_length=1, max_length=4)
    difficulty: Difficulty


class Ticket(BaseModel):
    category: Literal["bug", "feature", "question"]
    priority: int
    summary: str = Field(max_length=40)
    labels: list[Literal["ui", "backend", "docs"]] = Field(max_length=3)
    assignee: str | None = Field(max_length=20)


PROMPTS = [
    (Person, "Invent a person who lives in Paris."), (Recipe, "Give me a recipe for pancakes."),
    (Ticket, "The save button does nothing when I click it."), (Person, "Describe a famous painter."),
    (Recipe, "How do I make a tomato soup?"), (Ticket, "Please add a dark mode."),
    (Person, "Make up a character for a novel set in Tokyo."), (Recipe, "A quick salad for lunch."),
    (Ticket, "How do I export my data?"), (Person, "Tell me about a teacher from Berlin."),
    (Recipe, "Chocolate cake, please."), (Ticket, "The docs page about install has a typo."),
    (Person, "Create a profile for a sailor."), (Recipe, "Something with rice and beans."),
    (Ticket, "The server crashes when the disk is full."), (Person, "An astronaut from Houston."),
    (Recipe, "A simple bread."), (Ticket, "Can the app remember my window size?"),
    (Person, "A chef from Rome."), (Recipe, "Lemonade for a hot day."),
]


def test_parse_with_pydantic_models_twenty_prompts_three_schemas(client):
    def parse(item):
        schema, prompt = item
        r = client.chat.completions.parse(model="", messages=[{"role": "user", "content": prompt}],
                                          response_format=schema, temperature=0, max_tokens=200)
        return schema, r

    results = in_parallel(parse, PROMPTS)
    assert len(results) == 20
    for schema, r in results:
        choice = r.choices[0]
        assert choice.finish_reason == "stop", choice.message.content
        assert isinstance(choice.message.parsed, schema)  # the client parsed and validated it
        assert schema.model_validate_json(choice.message.content) == choice.message.parsed
        assert r.model_extra["jarvis"]["constrained"] == "JSON"


def test_json_object_is_valid_json_every_time(client):
    prompts = ["Describe the city of Rome as JSON.", "List three fruits in JSON.", "A JSON object about a cat.",
               "Give the weather report as JSON.", "Your favourite book, as a JSON object."]

    def ask(prompt):
        return client.chat.completions.create(model="", messages=[{"role": "user", "content": prompt}],
                                              response_format={"type": "json_object"}, temperature=0,
                                              max_tokens=200)

    for r in in_parallel(ask, prompts):
        assert r.choices[0].finish_reason == "stop"
        assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_an_unsupported_schema_is_a_400_naming_the_part(client):
    bad = {"type": "object", "properties": {"age": {"type": "integr"}}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}],
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "x", "schema": bad}})
    assert e.value.status_code == 400
    assert e.value.body["param"] == "response_format.json_schema.schema.properties.age.type"
    assert "integr" in e.value.body["message"]


# ---- tools -----------------------------------------------------------------------------------
# Bounded strings: a grammar makes every finished answer valid, but a tiny model may ramble inside
# an unbounded string until max_tokens cuts it.
class WeatherArgs(BaseModel, extra="forbid"):
    city: str = Field(max_length=30)
    unit: Literal["celsius", "fahrenheit"]


class TimeArgs(BaseModel, extra="forbid"):
    city: str = Field(max_length=30)
    hour24: bool


def _tool(name: str, description: str, args: type[BaseModel]) -> dict:
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": args.model_json_schema()}}


TOOLS = [_tool("get_weather", "The current weather in a city", WeatherArgs),
         _tool("get_time", "The local time in a city", TimeArgs)]
ARGS = {"get_weather": WeatherArgs, "get_time": TimeArgs}
QUESTIONS = ["What is the weather in Paris?", "What time is it in Tokyo?", "Is it raining in London?",
             "Tell me the time in New York."]


def _check_calls(message, allowed: set[str]) -> None:
    assert message.tool_calls, message.content
    for call in message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in allowed
        ARGS[call.function.name].model_validate_json(call.function.arguments)


def test_tool_choice_required_always_calls_a_tool_with_valid_arguments(client):
    def ask(question):
        return client.chat.completions.create(model="", messages=[{"role": "user", "content": question}],
                                              tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
                                              temperature=0, max_tokens=80)

    for r in in_parallel(ask, QUESTIONS):
        assert r.choices[0].finish_reason == "tool_calls"
        _check_calls(r.choices[0].message, {"get_weather", "get_time"})
        assert r.model_extra["jarvis"]["constrained"] == "tool call"


def test_a_named_tool_choice_calls_that_function(client):
    def ask(question):
        return client.chat.completions.create(
            model="", messages=[{"role": "user", "content": question}], tools=TOOLS, temperature=0, max_tokens=80,
            tool_choice={"type": "function", "function": {"name": "get_time"}}, parallel_tool_calls=False)

    for r in in_parallel(ask, QUESTIONS):
        assert r.choices[0].finish_reason == "tool_calls"
        assert len(r.choices[0].message.tool_calls) == 1
        _check_calls(r.choices[0].message, {"get_time"})


def _accumulate(chunks) -> tuple[str | None, list[tuple[str, str]], str]:
    """What an OpenAI client builds from the deltas: content, [(name, arguments)], finish_reason."""
    content: str | None = None
    calls: dict[int, dict] = {}
    finish = ""
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content is not None:
                content = (content or "") + delta.content
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": "", "id": None})
                if call.id:
                    entry["id"] = call.id
                if call.function and call.function.name:
                    entry["name"] += call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    assert all(c["id"] for c in calls.values())
    return content, [(c["name"], c["arguments"]) for _, c in sorted(calls.items())], finish


def test_streamed_tool_calls_accumulate_to_the_non_streamed_answer(client):
    kw = dict(model="", messages=[{"role": "user", "content": "What is the weather in Madrid?"}], tools=TOOLS,
              tool_choice="required", temperature=0, max_tokens=150, extra_body=NO_CACHE)  # parallel calls allowed
    whole = client.chat.completions.create(**kw).choices[0]
    content, calls, finish = _accumulate(client.chat.completions.create(stream=True, **kw))
    assert finish == whole.finish_reason == "tool_calls"
    assert content == whole.message.content
    assert calls == [(c.function.name, c.function.arguments) for c in whole.message.tool_calls]


def test_a_history_with_the_tools_result_answers_in_text(client):
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "celsius"})}}
    messages = [{"role": "user", "content": "What is the weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 degrees celsius."}]
    r = client.chat.completions.create(model="", messages=messages, tools=TOOLS, tool_choice="none", temperature=0,
                                       max_tokens=40)
    choice = r.choices[0]
    assert choice.message.tool_calls is None and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    bare = client.chat.completions.create(model="", messages=messages[:1], temperature=0, max_tokens=1)
    assert r.usage.prompt_tokens > bare.usage.prompt_tokens + 20  # the call and its result reached the model


def test_auto_answers_either_text_or_valid_calls(client):
    def ask(question):
        return client.chat.completions.create(model="", messages=[{"role": "user", "content": question}],
                                              tools=TOOLS, temperature=0, max_tokens=60)

    for r in in_parallel(ask, QUESTIONS):
        message = r.choices[0].message
        if message.tool_calls:
            assert r.choices[0].finish_reason == "tool_calls"
            _check_calls(message, {"get_weather", "get_time"})
        else:
            assert message.content and "<tool_call>" not in message.content or r.choices[0].finish_reason == "length"


def test_bad_tools_are_400s_naming_the_field(client):
    def create(**kw):
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}], **kw)
        return e.value.body["param"]

    assert create(tools=[{"type": "function", "function": {"parameters": {}}}]) == "tools[0].function.name"
    assert create(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}) == "tool_choice"
    assert create(tool_choice="required") == "tool_choice"
    bad_schema = {"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                             "properties": {"x": {"type": "nope"}}}}}
    assert create(tools=[TOOLS[0], bad_schema], tool_choice="required") == "tools[1].function.parameters.properties.x.type"
