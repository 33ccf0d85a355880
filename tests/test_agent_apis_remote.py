"""The Responses and Messages APIs against a REMOTE model: the real third-party llama_cpp.server
behind JARVIS (as in test_remote_passthrough.py), through both official SDKs. The translators
sit above the backend seam, so a remote model answers them like a local one: text, streams, a
stored conversation, and forced tool calls made by the remote server itself."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from bench.support.server import ServerThread
from bench.support.settings import make_settings
from tests.support.remote_servers import LlamaCppServer, with_remote

MODEL = "lc/smol"
NO_CACHE = {"temperature": 0, "cache": False}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def jarvis(tmp_path_factory, model_path):
    with LlamaCppServer(model_path) as text:
        settings = with_remote(make_settings(tmp_path_factory.mktemp("agent-remote")), "lc", text.base_url,
                               health_interval_s=3600)
        with ServerThread(settings, preload=False) as server:
            server.call(server.runtime.assistant.backends.get("lc").ensure_probed())
            yield server


def test_messages_from_a_remote_model_whole_streamed_and_a_forced_tool_use(jarvis):
    with anthropic.Anthropic(base_url=jarvis.url, api_key="unused", max_retries=0, timeout=600) as c:
        ask = dict(model=MODEL, max_tokens=12, messages=[{"role": "user", "content": "Name a color."}])
        whole = c.messages.create(**ask, extra_body=NO_CACHE)
        assert whole.content[0].type == "text" and whole.content[0].text and whole.usage.output_tokens > 0
        with c.messages.stream(**ask, extra_body=NO_CACHE) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        # The stream's text is its final message's. (Not compared with `whole`: the remote reuses the
        # prompt's cells the second time, a different batch shape, and greedy text may differ by CPU.)
        assert text and text == final.content[0].text and final.usage.output_tokens > 0
        used = c.messages.create(model=MODEL, max_tokens=40, extra_body=NO_CACHE,
                                 messages=[{"role": "user", "content": "Weather in Oslo?"}],
                                 tools=[{"name": "get_weather", "input_schema": SCHEMA}],
                                 tool_choice={"type": "tool", "name": "get_weather"})
        assert used.stop_reason == "tool_use"
        assert [(b.name, type(b.input["city"])) for b in used.content if b.type == "tool_use"] == [("get_weather", str)]


def test_responses_from_a_remote_model_stored_streamed_and_a_forced_call(jarvis):
    with openai.OpenAI(base_url=jarvis.base_url, api_key="unused", max_retries=0, timeout=600) as c:
        first = c.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=8, extra_body=NO_CACHE)
        second = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id,
                                    max_output_tokens=8, extra_body=NO_CACHE)
        # (llama_cpp.server streams no usage, so the remote's prompt_tokens are 0: the history is checked here)
        assert second.output_text and second.previous_response_id == first.id
        history = c.responses.input_items.list(second.id).data
        assert [i.content[0].text for i in history] == ["What is my name?"]
        with c.responses.stream(model=MODEL, input="Name a color.", max_output_tokens=8,
                                extra_body=NO_CACHE) as stream:
            events = list(stream)
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert events[-1].type in ("response.completed", "response.incomplete")  # incomplete: max_output_tokens
        assert deltas and deltas == events[-1].response.output_text
        called = c.responses.create(model=MODEL, input="Weather in Oslo?", max_output_tokens=40, extra_body=NO_CACHE,
                                    tools=[{"type": "function", "name": "get_weather", "parameters": SCHEMA}],
                                    tool_choice={"type": "function", "name": "get_weather"})
        calls = [item for item in called.output if item.type == "function_call"]
        assert calls and calls[0].name == "get_weather" and json.loads(calls[0].arguments)["city"]
