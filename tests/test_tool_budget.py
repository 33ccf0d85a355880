"""The tools' descriptions in the prompt budget, on the real bundled model with a small context and
the SDK-written MCP test server: a long chat with tools loses its oldest turns, never its tools, and
says so; tools that cannot fit even with the newest message alone are a clear error saying what to do."""

from __future__ import annotations

import asyncio
import sys

import pytest

from jarvis.assistant import Assistant
from jarvis.config import load_settings
from jarvis.errors import ContextOverflow
from jarvis.mcp.hub import McpHub
from jarvis.mcp.settings import McpSettings, validate_server
from jarvis.request import Message
from jarvis.stats_line import stats_line
from jarvis.telemetry.records import RequestRecord
from jarvis.tools.loop import ToolEvent, ToolLoop
from tests.support.process import ROOT

TEST_SERVER = {"command": sys.executable, "args": ["-m", "tests.support.mcp_test_server", "stdio"],
               "cwd": str(ROOT), "env": {"PYTHONPATH": str(ROOT)}, "approval": "always"}
MAX_TOKENS = 40
# Twelve earlier exchanges of about 60 tokens each: with the tools, more than a 1,024-token context holds.
HISTORY = [Message(role, f"Turn {i}: " + ("the weather was mild and the meeting ran long. " * 5))
           for i in range(12) for role in ("user", "assistant")]


def _hub() -> McpHub:
    return McpHub(McpSettings(servers={"t": validate_server("t", TEST_SERVER, "test")}))


async def _first_record(assistant: Assistant, hub: McpHub | None) -> tuple[RequestRecord, list[ToolEvent]]:
    """The record of the turn's first request (the one whose prompt carries the tools), and its calls."""
    records: list[RequestRecord] = []
    unsubscribe = assistant.bus.subscribe(lambda r: records.append(r) if isinstance(r, RequestRecord) else None)
    request = assistant.request(messages=HISTORY + [Message("user", "What is the process id?")],
                                temperature=0, max_tokens=MAX_TOKENS)
    try:
        if hub is None:
            await assistant.chat(request)
            return records[0], []
        loop = ToolLoop(assistant, hub, None, max_rounds=1)
        events = [e async for e in loop.turn(request, "pid") if isinstance(e, ToolEvent) and e.status != "running"]
        return records[0], events
    finally:
        unsubscribe()


def test_a_long_chat_with_tools_drops_its_oldest_turns_not_the_tools_and_says_so(env):
    settings = load_settings(environ={**env, "JARVIS_ENGINE_CONTEXT_LENGTH": "1024", "JARVIS_ENGINE_BATCH_SIZE": "1"})

    async def main():
        assistant, hub = Assistant(settings), _hub()
        try:
            plain, _ = await _first_record(assistant, None)
            with_tools, events = await _first_record(assistant, hub)
        finally:
            await hub.close()
            await assistant.close()
        limit = 1024 - MAX_TOKENS
        tools = with_tools.tool_schema_tokens["t"]
        assert plain.prompt_tokens <= limit and with_tools.prompt_tokens <= limit
        # The tools took their room from the history: more of the oldest turns went, and they are in the prompt.
        assert with_tools.dropped_turns > plain.dropped_turns >= 0
        assert with_tools.prompt_tokens >= tools > 0
        assert [e.status for e in events] == ["done"]  # the model still had the tool and called it
        n = with_tools.dropped_turns
        assert f"{n} earlier turns left out to fit the tools" in stats_line(with_tools)
        assert "left out" not in stats_line(plain)
    asyncio.run(main())


def test_tools_that_cannot_fit_with_the_newest_message_are_an_error_that_says_what_to_do(env):
    settings = load_settings(environ={**env, "JARVIS_ENGINE_CONTEXT_LENGTH": "512", "JARVIS_ENGINE_BATCH_SIZE": "1"})

    async def main():
        assistant, hub = Assistant(settings), _hub()
        try:
            with pytest.raises(ContextOverflow) as raised:
                await _first_record(assistant, hub)
        finally:
            await hub.close()
            await assistant.close()
        message = str(raised.value)
        assert "tools take" in message and "Tools tab" in message and "[mcp.servers.NAME.tools.TOOL]" in message
        assert raised.value.context_tokens == 512
    asyncio.run(main())
