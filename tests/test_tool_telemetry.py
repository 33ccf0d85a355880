"""What tool calls add to telemetry, on the real bundled model and the SDK-written MCP test server
over stdio: per server calls, errors, refused calls, P50/P95 call latency and the schema tokens of
its enabled tools, the same in PerfMonitor, the HTTP stats JSON, /metrics and the request rows."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import urllib.request

from jarvis.mcp.hub import McpHub
from jarvis.mcp.settings import McpSettings, validate_server
from jarvis.runtime import Runtime
from jarvis.telemetry.perf import PerfMonitor
from jarvis.telemetry.records import RequestRecord, ToolCallFigures
from jarvis.tools.cost import gguf_schema_tokens
from jarvis.tools.loop import ToolEvent, ToolLoop
from tests.support.process import ROOT

TEST_SERVER = {"command": sys.executable, "args": ["-m", "tests.support.mcp_test_server", "stdio"],
               "cwd": str(ROOT), "env": {"PYTHONPATH": str(ROOT)}, "approval": "always",
               "tools": {"big": {"approval": "ask"}}}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


async def _turn(loop: ToolLoop, assistant, choice: str) -> list[ToolEvent]:
    request = assistant.request("Use the tool.", temperature=0, max_tokens=24)
    return [e async for e in loop.turn(request, choice) if isinstance(e, ToolEvent) and e.status != "running"]


def test_per_server_calls_errors_latency_and_schema_tokens_reach_every_consumer(settings, model_path):
    async def main():
        runtime = Runtime(settings)
        hub = McpHub(McpSettings(servers={"t": validate_server("t", TEST_SERVER, "test")}))
        await runtime.start(http=True, port=0, warmup=False)

        async def deny(tool, call, arguments):
            return "deny"
        try:
            loop = ToolLoop(runtime.assistant, hub, deny, max_rounds=1)  # one call per turn, by construction
            a = runtime.assistant
            outcomes = [e.status for choice in ("pid", "fail", "pid", "big") for e in await _turn(loop, a, choice)]
            assert outcomes == ["done", "error", "done", "denied"]
            tools = await hub.list_tools()
            per_tool, _ = await asyncio.to_thread(gguf_schema_tokens, tools, model_path)

            figures = runtime.hub.perf.tool_servers()["t"]
            assert (figures["calls"], figures["errors"], figures["refused"]) == (3, 1, 1)
            assert 0 < figures["p50_ms"] <= figures["p95_ms"]
            assert figures["schema_tokens"] == sum(per_tool.values()) > per_tool["big"] > 0

            base = runtime.server.url
            stats = json.loads(await asyncio.to_thread(_get, f"{base}/api/performance/stats"))
            assert stats["tools"]["t"] == figures
            metrics = await asyncio.to_thread(_get, f"{base}/metrics")
            assert 'jarvis_tool_calls_total{server="t",status="done"} 2.0' in metrics
            assert 'jarvis_tool_calls_total{server="t",status="error"} 1.0' in metrics
            assert 'jarvis_tool_calls_total{server="t",status="denied"} 1.0' in metrics
            assert 'jarvis_tool_call_duration_seconds_count{server="t"} 3.0' in metrics
            tokens = re.search(r'jarvis_tool_schema_tokens\{server="t"\} (\S+)', metrics)
            assert tokens and float(tokens.group(1)) == figures["schema_tokens"]

            # The request rows: each turn's second request followed one tool round, with its tool time.
            rows = json.loads(await asyncio.to_thread(_get, f"{base}/api/requests/recent?limit=100"))["requests"]
            assert sorted(r["tool_rounds"] for r in rows) == [0, 0, 0, 0, 1, 1, 1, 1]
            assert sum(r["tool_ms"] > 0 for r in rows) == 3  # the denied call never ran

            # A tool switched off leaves the prompt: the server's schema tokens drop by its cost.
            hub.servers["t"].set_tool_enabled("big", False)
            await _turn(loop, a, "pid")
            after = runtime.hub.perf.tool_servers()["t"]
            assert after["schema_tokens"] == figures["schema_tokens"] - per_tool["big"]
            assert (after["calls"], after["errors"]) == (4, 1)
        finally:
            await hub.close()
            await runtime.close()
    asyncio.run(main())


def test_a_call_is_counted_once_and_a_prompt_without_tools_leaves_the_schema_tokens_alone():
    perf = PerfMonitor()
    call = ToolCallFigures("git", "git_status", "done", 12.0)
    perf.observe(RequestRecord("r1", "m", tool_rounds=1, tool_ms=12.0, tool_calls=(call,),
                               tool_schema_tokens={"git": 900, "time": 300}))
    perf.observe(RequestRecord("r2", "m"))  # no tools in its prompt (e.g. the last round's words-only answer)
    perf.observe(RequestRecord("r3", "m", tool_schema_tokens={"git": 700}))  # time's tools all switched off
    servers = perf.tool_servers()
    assert servers["git"] == {"calls": 1, "errors": 0, "refused": 0, "p50_ms": 12.0, "p95_ms": 12.0,
                              "schema_tokens": 700}
    assert servers["time"]["schema_tokens"] == 0 and servers["time"]["calls"] == 0
