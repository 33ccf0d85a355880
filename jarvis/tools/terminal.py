"""The tool loop on a terminal (`jarvis ask --tools`, `jarvis chat --tools`): the approval question
as y / n / a(lways), and one line per call."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TextIO

from jarvis.request import ToolCall
from jarvis.tools.loop import Decision, ToolEvent
from jarvis.tools.source import ToolInfo

ANSWERS: dict[str, Decision] = {"y": "once", "yes": "once", "a": "always", "always": "always",
                                "n": "deny", "no": "deny"}


def terminal_approver(stdin: TextIO | None = None, out: TextIO | None = None):
    """An Approver that asks on the terminal. The line is read on a worker thread (the loop never
    blocks); end of input counts as no."""
    async def approve(tool: ToolInfo, call: ToolCall, arguments: dict) -> Decision:
        stream_in, stream_out = stdin or sys.stdin, out or sys.stderr
        shown = json.dumps(arguments, ensure_ascii=False)
        while True:
            stream_out.write(f"\n[tool] {tool.name} {shown} ({tool.origin}): run it? [y]es / [n]o / [a]lways: ")
            stream_out.flush()
            line = await asyncio.get_running_loop().run_in_executor(None, stream_in.readline)
            if not line:
                stream_out.write("(no answer: denied)\n")
                return "deny"
            answer = ANSWERS.get(line.strip().lower())
            if answer:
                return answer
    return approve


def describe(event: ToolEvent) -> str | None:
    """One line per finished call (None for "running")."""
    name = event.call.name
    if event.status == "running":
        return None
    if event.status == "done":
        return f"[tool] {name}: done in {event.ms:.0f} ms ({len(event.result)} characters)"
    if event.status == "denied":
        return f"[tool] {name}: denied"
    return f"[tool] {name}: {event.result}"


async def tool_turn(assistant, settings, request, choice: str = "auto"):
    """`jarvis ask --tools`: one turn through the tool loop over the configured MCP servers; yields
    the answer's chunks, writes one line per call to stderr, closes the servers at the end."""
    from jarvis.mcp.hub import McpHub
    from jarvis.tools.loop import ToolLoop

    hub = McpHub(settings.mcp)
    try:
        loop = ToolLoop(assistant, hub, terminal_approver(), max_rounds=settings.mcp.max_rounds,
                        result_max_kb=settings.mcp.result_max_kb)
        async for item in loop.turn(request, choice):
            if isinstance(item, ToolEvent):
                line = describe(item)
                if line:
                    print(line, file=sys.stderr, flush=True)
            else:
                yield item
    finally:
        await hub.close()
