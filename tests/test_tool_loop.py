"""The tool loop on the real bundled model and real MCP servers: a forced call runs and its
result reaches the model; deny / approve / always; a Stop cancels a running call on the server."""

from __future__ import annotations

import asyncio
import sys

import pytest

from jarvis.assistant import Assistant
from jarvis.mcp.hub import McpHub
from jarvis.mcp.settings import McpSettings, validate_server
from jarvis.tools.loop import DENIED, ToolEvent, ToolLoop, cap, check_arguments
from tests.support.process import ROOT

TIME = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}
TEST_SERVER = {"command": sys.executable, "args": ["-m", "tests.support.mcp_test_server", "stdio"],
               "cwd": str(ROOT), "env": {"PYTHONPATH": str(ROOT)}}


class Recording:
    """The Assistant, with every request the loop hands it kept for the test to read."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant, self.requests = assistant, []

    def stream(self, request):
        self.requests.append(request)
        return self.assistant.stream(request)


def _hub(**servers) -> McpHub:
    return McpHub(McpSettings(servers={n: validate_server(n, t, "test") for n, t in servers.items()}))


async def _drive(turn) -> tuple[str, list[ToolEvent]]:
    text, events = [], []
    async for item in turn:
        if isinstance(item, ToolEvent):
            events.append(item)
        else:
            text.append(item.text)
    return "".join(text), events


def test_a_forced_call_of_mcp_server_time_runs_and_its_result_reaches_the_model(settings):
    async def main():
        assistant, hub = Assistant(settings), _hub(time=TIME)
        asked = []

        async def approve(tool, call, arguments):
            asked.append((tool.name, arguments))
            return "once"
        try:
            recording = Recording(assistant)
            loop = ToolLoop(recording, hub, approve, max_rounds=1)
            request = assistant.request("What time is it in Tokyo?", temperature=0, max_tokens=60)
            turn = loop.turn(request, choice="get_current_time")
            text, events = await _drive(turn)
            done = [e for e in events if e.status == "done"]
            assert [e.tool.name for e in done] == ["get_current_time"] and asked[0][0] == "get_current_time"
            assert '"timezone"' in done[0].result and done[0].ms > 0
            # The second request carries the call and its result; the model answered in words.
            second = recording.requests[-1].messages
            assert second[-2].tool_calls and second[-1].role == "tool" and second[-1].content == done[0].result
            assert second[-1].tool_call_id == second[-2].tool_calls[0].id
            assert turn.rounds == 1 and turn.messages[-1].role == "assistant" and not turn.messages[-1].tool_calls
            assert recording.requests[-1].options.tools.choice == "none"  # its rounds were used up
            assert len(turn.overheads) == 1 and turn.overheads[0].call_ms >= 0 and turn.overheads[0].resume_ms >= 0
        finally:
            await hub.close()
            await assistant.close()
    asyncio.run(main())


def test_deny_is_told_to_the_model_and_always_stops_asking(settings):
    async def main():
        assistant, hub = Assistant(settings), _hub(t=TEST_SERVER)
        answers, asked = ["deny", "always"], []

        async def approve(tool, call, arguments):
            asked.append(tool.name)
            return answers.pop(0)
        try:
            loop = ToolLoop(assistant, hub, approve, max_rounds=1)
            request = assistant.request("Show the process id", temperature=0, max_tokens=40)
            _, events = await _drive(loop.turn(request, choice="pid"))
            assert [e.status for e in events] == ["denied"] and events[0].result == DENIED.format(name="pid")
            assert hub.servers["t"].calls == 0  # a denied call never reaches the server
            _, events = await _drive(loop.turn(request, choice="pid"))  # "always"
            _, events = await _drive(loop.turn(request, choice="pid"))  # not asked again
            assert asked == ["pid", "pid"] and [e.status for e in events] == ["running", "done"]
            assert hub.servers["t"].calls == 2
        finally:
            await hub.close()
            await assistant.close()
    asyncio.run(main())


def test_stopping_the_answer_cancels_the_running_call_on_the_server(settings):
    async def main():
        assistant, hub = Assistant(settings), _hub(t=dict(TEST_SERVER, approval="always"))
        try:
            loop = ToolLoop(assistant, hub, None, max_rounds=1)
            running = asyncio.Event()

            async def consume():
                async for item in loop.turn(assistant.request("Wait", temperature=0, max_tokens=40), choice="block"):
                    if isinstance(item, ToolEvent) and item.status == "running":
                        running.set()
            task = asyncio.create_task(consume())
            await running.wait()
            server = hub.servers["t"]
            for _ in range(3000):
                if "blocking" in server._stderr:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(3000):  # the server hears notifications/cancelled
                if "block was cancelled" in server._stderr:
                    break
                await asyncio.sleep(0.01)
            assert "block was cancelled" in server._stderr and server.state == "ready"
        finally:
            await hub.close()
            await assistant.close()
    asyncio.run(main())


def test_arguments_are_checked_against_the_schema_before_a_call():
    schema = {"type": "object", "properties": {"timezone": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["timezone"]}
    assert check_arguments(schema, '{"timezone": "UTC"}') == ({"timezone": "UTC"}, "")
    assert check_arguments(schema, "{}")[1] == "'timezone' is a required property"
    assert check_arguments(schema, '{"timezone": "UTC", "n": "x"}')[1] == "n: 'x' is not of type 'integer'"
    assert "not valid JSON" in check_arguments(schema, "{nope")[1]
    assert check_arguments(schema, "[1]")[1] == "the arguments must be a JSON object"


def test_a_long_result_is_cut_and_says_so():
    short = cap("é" * 10, 1)
    assert short == "é" * 10
    cut = cap("x" * 5000, 1)
    assert cut.startswith("x" * 1024) and "it is 5,000 bytes and only the first 1 KiB are shown" in cut
