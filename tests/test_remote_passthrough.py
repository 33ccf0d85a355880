"""What a remote server can do reaches it through JARVIS: structured output, tools, logprobs and
embeddings are passed through (jarvis/remote/wire.py), not refused, against the real third-party
`llama_cpp.server` (the pinned llama-cpp-python's own, on the bundled model). A server that
refuses a part says so in a 400 that names the remote."""

from __future__ import annotations

import json

import numpy as np
import openai
import pytest

from tests.support.remote_servers import LlamaCppServer, with_remote
from bench.support.server import ServerThread
from bench.support.settings import make_settings

GREEDY = {"temperature": 0, "extra_body": {"cache": False}}
# Every value is an enum or a boolean: the grammar bounds the whole answer (a free string may run
# past max_tokens, and this remote's grammar lets one hold raw newlines), so it always completes.
CITIES = ["Oslo", "Lima", "Tokyo", "Cairo"]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "enum": CITIES}, "capital": {"type": "boolean"}},
          "required": ["city", "capital"]}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


@pytest.fixture(scope="module")
def servers(model_path):
    """One server for text (as llama-cpp-python's server takes a schema) and one with --embedding."""
    with LlamaCppServer(model_path) as text, LlamaCppServer(model_path, embedding=True) as vectors:
        yield text, vectors


@pytest.fixture(scope="module")
def jarvis(tmp_path_factory, servers):
    text, vectors = servers
    settings = make_settings(tmp_path_factory.mktemp("passthrough"))
    settings = with_remote(settings, "lc", text.base_url, health_interval_s=3600, json_schema_as="json_object")
    settings = with_remote(settings, "emb", vectors.base_url, health_interval_s=3600)
    with ServerThread(settings, preload=False) as server:
        for name in ("lc", "emb"):
            server.call(server.runtime.assistant.backends.get(name).ensure_probed())
        yield server


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_a_json_schema_answer_from_the_remote_parses_and_follows_the_schema(jarvis):
    reply = client(jarvis).chat.completions.create(
        model="lc/smol", messages=[{"role": "user", "content": "Name a big city and say if it is a capital."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}, max_tokens=200,
        **GREEDY)
    answer = json.loads(reply.choices[0].message.content)
    assert answer["city"] in CITIES and isinstance(answer["capital"], bool) and set(answer) == {"city", "capital"}
    assert reply.model_extra["jarvis"]["backend"] == "lc"


def test_a_forced_tool_call_is_made_by_the_remote_and_comes_back_as_tool_calls(jarvis):
    c = client(jarvis)
    ask = dict(model="lc/smol", messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
               tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
               max_tokens=32, **GREEDY)
    whole = c.chat.completions.create(**ask)
    call = whole.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments)["city"], str)
    streamed = [e for e in c.chat.completions.create(stream=True, **ask) if e.choices]
    calls = [tc for e in streamed for tc in (e.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == json.loads(call.function.arguments)
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_logprobs_come_from_the_remote(jarvis):
    reply = client(jarvis).chat.completions.create(
        model="lc/smol", messages=[{"role": "user", "content": "Say hello."}], max_tokens=4, logprobs=True,
        top_logprobs=2, **GREEDY)
    entries = reply.choices[0].logprobs.content
    assert entries and all(e.logprob <= 0 for e in entries)
    assert "".join(e.token for e in entries) == reply.choices[0].message.content


def test_embeddings_of_a_remote_model_come_from_its_server(jarvis):
    records = []
    unsubscribe = jarvis.runtime.bus.subscribe(records.append)
    try:
        out = client(jarvis).embeddings.create(model="emb/smol", input=["a cat", "a dog"])
    finally:
        unsubscribe()
    vectors = [np.asarray(d.embedding) for d in out.data]
    assert len(vectors) == 2 and vectors[0].shape == vectors[1].shape and vectors[0].shape[0] > 1
    # unit length, like a local model's (approx: the server's floats, normalised here)
    assert all(float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-3) for v in vectors)
    mine = [r for r in records if getattr(r, "operation", "") == "embeddings"]
    assert [(r.model, r.backend, r.status) for r in mine] == [("emb/smol", "emb", "ok")]


def test_a_part_the_server_refuses_is_an_error_that_names_the_remote(jarvis):
    """llama-cpp-python's server takes no OpenAI-form json_schema: `emb` keeps that form, so its
    server refuses it, and the client hears which remote said no and what it said. (That server
    answers a validation error with a 500, which JARVIS passes on as a 502; a server that answers
    400 or 422 gets a 400, as RemoteBackend._status_failure maps it.)"""
    with pytest.raises(openai.APIStatusError) as e:
        client(jarvis).chat.completions.create(
            model="emb/smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}, **GREEDY)
    assert "'emb'" in str(e.value) and "response_format" in str(e.value) and e.value.status_code in (400, 502)
