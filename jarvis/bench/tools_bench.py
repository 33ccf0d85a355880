"""What tools cost: the tool loop's own overhead, and the prompt tokens of real MCP servers' schemas.

- Overhead, P50/P95 over N turns on the bundled model with `mcp-server-time` over stdio (a forced
  call of get_current_time, approval "always", one round): from the model's last token to the
  call's request handed to the MCP SDK (`call_ms`; split into `handoff_ms`, the token's way from
  the engine thread to the loop with the Assistant's record, and `loop_call_ms`, the loop's own
  parse, validation and the SDK), and from the result's arrival to the next request handed to the
  Assistant (`resume_ms`). The baseline, measured in the same run: the
  tool's own round trip (request sent -> answer back) and the model's time per turn; the overhead
  is given as a share of each.
- Schema tokens in the bundled model's prompt of mcp-server-time's and mcp-server-git's tools
  (pinned in the test extra), every tool on, then with some switched off.

`python -m jarvis.bench.tools_bench [--turns N] [--json]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

from jarvis.bench.engine_bench import percentile
from jarvis.catalog import bundled_model_path
from jarvis.config import load_settings
from jarvis.mcp.hub import McpHub
from jarvis.mcp.settings import McpSettings, validate_server
from jarvis.tools.cost import gguf_schema_tokens
from jarvis.tools.loop import ToolEvent, ToolLoop

SERVERS = {
    "mcp-server-time": ({"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]},
                        ["convert_time"]),
    "mcp-server-git": ({"command": sys.executable, "args": ["-m", "mcp_server_git"]},
                       # the tools that change a repository, off: a read-only git
                       ["git_commit", "git_add", "git_reset", "git_create_branch", "git_checkout"]),
}


def _hub(name: str, table: dict) -> McpHub:
    return McpHub(McpSettings(servers={name: validate_server(name, table, "bench")}))


async def schema_figures() -> dict:
    """{server: {tools, tokens_all, tokens_with_off, off, per_tool}}; a server that does not start
    is reported with its error."""
    out: dict = {}
    model = bundled_model_path()
    for label, (table, off) in SERVERS.items():
        hub = _hub("s", dict(table, approval="always"))
        try:
            tools = await hub.list_tools()
            status = hub.statuses()[0]
        finally:
            await hub.close()
        if not tools:
            out[label] = {"error": status.last_error or status.state}
            continue
        per_tool, total = await asyncio.to_thread(gguf_schema_tokens, tools, model)
        kept = [t for t in tools if t.name not in off]
        _, total_kept = await asyncio.to_thread(gguf_schema_tokens, kept, model)
        out[label] = {"tools": len(tools), "tokens_all": total, "off": [t for t in off if t in per_tool],
                      "tokens_with_off": total_kept, "per_tool": per_tool}
    return out


async def overhead_figures(turns: int, data_dir: str) -> dict:
    from jarvis.assistant import Assistant

    settings = load_settings(environ={**os.environ, "JARVIS_MODELS_WARMUP": "", "JARVIS_GENERAL_DATA_DIR": data_dir,
                                      "JARVIS_GPU_USE_GPU": "false"})
    assistant = Assistant(settings)
    hub = _hub("time", dict(SERVERS["mcp-server-time"][0], approval="always"))
    call_ms, resume_ms, tool_ms, turn_ms, handoff_ms = [], [], [], [], []
    try:
        if not await hub.list_tools():
            raise SystemExit(f"mcp-server-time did not start ({hub.statuses()[0].last_error}): "
                             "pip install mcp-server-time==2026.10.19 (the test extra has it)")
        loop = ToolLoop(assistant, hub, None, max_rounds=1)
        for i in range(turns + 1):  # the first turn loads the model and starts the server: not counted
            request = assistant.request(f"What time is it in Tokyo? ({i})", temperature=0, max_tokens=60,
                                        use_cache=False)
            started = time.perf_counter()
            turn = loop.turn(request, choice="get_current_time")
            async for item in turn:
                if isinstance(item, ToolEvent) and item.status == "done" and i:
                    tool_ms.append(item.ms)
            if i and turn.overheads:
                call_ms.append(turn.overheads[0].call_ms)
                handoff_ms.append(turn.overheads[0].handoff_ms)
                resume_ms.append(turn.overheads[0].resume_ms)
                turn_ms.append((time.perf_counter() - started) * 1000)
    finally:
        await hub.close()
        await assistant.close()

    def p(values: list[float]) -> dict:
        return {"p50": round(percentile(values, 50), 3), "p95": round(percentile(values, 95), 3)}
    if not call_ms:
        raise SystemExit("no turn made a tool call: nothing to measure")
    overhead = [c + r for c, r in zip(call_ms, resume_ms)]
    loop_ms = [c - h for c, h in zip(call_ms, handoff_ms)]
    return {"turns": len(call_ms), "call_ms": p(call_ms), "handoff_ms": p(handoff_ms), "loop_call_ms": p(loop_ms),
            "resume_ms": p(resume_ms), "tool_ms": p(tool_ms),
            "turn_ms": p(turn_ms),
            "overhead_vs_tool": round(percentile(overhead, 50) / max(percentile(tool_ms, 50), 1e-9), 4),
            "overhead_vs_turn": round(percentile(overhead, 50) / max(percentile(turn_ms, 50), 1e-9), 5)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jarvis.bench.tools_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20, help="measured turns (one forced call each)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    async def run() -> dict:
        with tempfile.TemporaryDirectory(prefix="jarvis-tools-bench-") as data_dir:
            return {"bench": "tools", "overhead": await overhead_figures(args.turns, data_dir),
                    "schema_tokens": await schema_figures()}
    result = asyncio.run(run())
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    o = result["overhead"]
    print(f"Tool loop overhead over {o['turns']} turns (bundled model, mcp-server-time over stdio), ms P50 / P95:")
    print(f"  last call token -> tool request sent   {o['call_ms']['p50']:.2f} / {o['call_ms']['p95']:.2f}")
    print(f"    of which the token's way to the loop {o['handoff_ms']['p50']:.2f} / {o['handoff_ms']['p95']:.2f}"
          "  (engine thread -> loop, the Assistant's record)")
    print(f"    of which the loop and the MCP SDK    {o['loop_call_ms']['p50']:.2f} / {o['loop_call_ms']['p95']:.2f}")
    print(f"  result -> next request to the model    {o['resume_ms']['p50']:.2f} / {o['resume_ms']['p95']:.2f}")
    print(f"  baseline: the tool's own round trip    {o['tool_ms']['p50']:.2f} / {o['tool_ms']['p95']:.2f}"
          f"  (overhead = {o['overhead_vs_tool']:.1%} of it)")
    print(f"  baseline: a whole turn                 {o['turn_ms']['p50']:.0f} / {o['turn_ms']['p95']:.0f}"
          f"  (overhead = {o['overhead_vs_turn']:.2%} of it)")
    print("\nTool schemas in the bundled model's prompt (tokens):")
    for label, f in result["schema_tokens"].items():
        if "error" in f:
            print(f"  {label}: did not start: {f['error']}")
            continue
        print(f"  {label}: {f['tools']} tools, {f['tokens_all']} tokens; with {', '.join(f['off'])} off: "
              f"{f['tokens_with_off']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
