"""`jarvis serve --mcp`: API requests with "jarvis_tools": true get the server's MCP tools whose
approval is "always", run server-side by the tool loop. Over real HTTP, with the bundled model and
the SDK-written MCP test server on loopback (streamable HTTP)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from jarvis.http.openai_routes import openai_routes
from jarvis.mcp.hub import McpHub
from jarvis.mcp.settings import McpSettings, validate_server
from jarvis.runtime import Runtime
from jarvis.tools.source import AlwaysAllowed
from tests.support.mcp_servers import http_test_server


@pytest.fixture(scope="module")
def mcp_url():
    with http_test_server() as url:
        yield url


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_jarvis_tools_runs_the_always_allowed_tools_server_side_and_offers_no_others(settings, mcp_url):
    table = {"url": mcp_url, "approval": "ask", "tools": {"pid": {"approval": "always"}, "fail": {"approval": "never"}}}

    async def main():
        runtime = Runtime(settings, registrars=[openai_routes])
        hub = McpHub(McpSettings(servers={"t": validate_server("t", table, "test")}))
        runtime.tool_source = AlwaysAllowed(hub)
        await runtime.start(http=True, port=0, warmup=False)
        url = f"{runtime.server.url}/v1/chat/completions"
        ask = {"messages": [{"role": "user", "content": "What is the process id?"}], "temperature": 0,
               "max_tokens": 60, "jarvis_tools": True}
        try:
            assert [t.name for t in await runtime.tool_source.list_tools()] == ["pid"]
            status, answer = await asyncio.to_thread(
                _post, url, {**ask, "tool_choice": {"type": "function", "function": {"name": "pid"}}})
            assert status == 200, answer
            calls = answer["jarvis_tool_calls"]
            assert [(c["name"], c["server"], c["status"]) for c in calls] == [("pid", "t", "done")], answer
            assert calls[0]["result"].isdigit() and hub.servers["t"].calls == 1
            assert answer["jarvis"]["tool_rounds"] == 1 and answer["jarvis"]["tool_ms"] > 0
            assert answer["choices"][0]["message"]["role"] == "assistant"
            assert answer["usage"]["total_tokens"] > answer["jarvis"]["prompt_tokens"]  # two requests, summed

            # An "ask" tool is not offered over HTTP (no one to ask), nor a "never" one.
            for name in ("echo", "fail"):
                status, error = await asyncio.to_thread(
                    _post, url, {**ask, "tool_choice": {"type": "function", "function": {"name": name}}})
                assert status == 400 and "not one of the enabled tools (pid)" in error["error"]["message"]
            status, error = await asyncio.to_thread(_post, url, {**ask, "stream": True})
            assert status == 400 and "stream: false" in error["error"]["message"]
            mine = [{"type": "function", "function": {"name": "mine", "parameters": {"type": "object"}}}]
            status, error = await asyncio.to_thread(_post, url, {**ask, "tools": mine})
            assert status == 400 and "not both" in error["error"]["message"]
            assert hub.servers["t"].calls == 1  # none of those ran anything

            runtime.tool_source = None  # a server started without --mcp
            status, error = await asyncio.to_thread(_post, url, ask)
            assert status == 400 and "jarvis serve --mcp" in error["error"]["message"]
        finally:
            await hub.close()
            await runtime.close()
    asyncio.run(main())
