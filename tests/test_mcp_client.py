"""The MCP client against real servers on this machine: the SDK-written test server over
streamable HTTP on loopback and over stdio, and `mcp-server-time` from PyPI over stdio."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import pytest

from jarvis.mcp.hub import McpHub
from jarvis.mcp.server import CRASHED, HUNG, READY, McpServer, McpServerError
from jarvis.mcp.settings import McpSettings, validate_server
from tests.support.mcp_servers import http_test_server
from tests.support.process import ROOT


def _server(name: str, **table) -> McpServer:
    return McpServer(name, validate_server(name, table, "test"))


@pytest.fixture(scope="module")
def http_url():
    with http_test_server() as url:
        yield url


STDIO_TEST_SERVER = {"command": sys.executable, "args": ["-m", "tests.support.mcp_test_server", "stdio"],
                     "cwd": str(ROOT), "env": {"PYTHONPATH": str(ROOT)}}


def test_mcp_server_time_over_stdio_lists_its_tools_and_answers_a_call():
    async def main():
        server = _server("time", command=sys.executable, args=["-m", "mcp_server_time", "--local-timezone", "UTC"])
        try:
            assert server.state == "stopped"  # nothing runs before its first use
            await server.ensure()
            assert server.state == READY
            assert {t.name for t in server.tools} == {"get_current_time", "convert_time"}
            result = await server.call("get_current_time", {"timezone": "Europe/Madrid"})
            assert not result.is_error and '"timezone": "Europe/Madrid"' in result.text
        finally:
            await server.close()
        assert server.state == "stopped"
    asyncio.run(main())


def test_http_server_echo_a_raising_tool_and_a_2mb_answer(http_url):
    async def main():
        server = _server("t", url=http_url)
        try:
            assert (await server.call("echo", {"text": "hello"})).text == "hello"
            failed = await server.call("fail", {})
            assert failed.is_error and "the tool broke on purpose" in failed.text
            assert server.state == READY  # a tool's error is its answer, not a broken server
            big = await server.call("big", {})
            assert len(big.text) == 2 * 1024 * 1024  # the client hands it on whole; the loop caps it
            assert (server.calls, server.errors, server.starts) == (3, 1, 1)
        finally:
            await server.close()
    asyncio.run(main())


def test_a_call_past_the_timeout_fails_clearly_and_the_next_call_restarts(http_url):
    async def main():
        server = _server("slow", url=http_url, timeout_s=1)
        try:
            with pytest.raises(McpServerError, match=r"slow .* hung: tools/call sleep got no answer within 1 s"):
                await server.call("sleep", {"seconds": 30})
            assert server.state == HUNG and "no answer within 1 s" in server.status().last_error
            assert (await server.call("echo", {"text": "back"})).text == "back"
            assert (server.state, server.starts) == (READY, 2)
        finally:
            await server.close()
    asyncio.run(main())


def test_a_list_that_changes_at_run_time_is_seen(http_url):
    async def main():
        server = _server("grow", url=http_url)
        try:
            await server.ensure()
            assert "late" not in {t.name for t in server.tools}
            assert (await server.call("grow", {})).text == "grown"
            for _ in range(500):  # the notification is handled on the loop: wait for it, bounded
                if "late" in {t.name for t in server.tools}:
                    break
                await asyncio.sleep(0.01)
            assert "late" in {t.name for t in server.tools}
            assert (await server.call("late", {})).text == "I arrived later"
        finally:
            await server.close()
    asyncio.run(main())


def test_a_stdio_server_killed_mid_call_gives_a_clear_error_and_the_next_call_restarts_it(caplog):
    caplog.set_level(logging.INFO, logger="jarvis.mcp")

    async def main():
        server = _server("victim", **STDIO_TEST_SERVER)
        try:
            pid = int((await server.call("pid", {})).text)
            call = asyncio.create_task(server.call("block", {}))
            for _ in range(3000):  # until the tool says on stderr that it is running
                if "blocking" in server._stderr:
                    break
                await asyncio.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(McpServerError, match="victim .* crashed") as e:
                await call
            assert "starts again on the next call" in str(e.value)
            assert server.state == CRASHED
            again = int((await server.call("pid", {})).text)
            assert again != pid and server.state == READY and server.starts == 2
        finally:
            await server.close()
    asyncio.run(main())
    assert any("victim: test server up" in r.getMessage() for r in caplog.records)  # stderr reached the log


def test_env_values_reach_the_server_but_never_the_log(caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        table = dict(STDIO_TEST_SERVER, env={"PYTHONPATH": str(ROOT), "SECRET_TOKEN": "${MY_TOKEN}"})
        server = McpServer("s", validate_server("s", table, "test"), environ={**os.environ, "MY_TOKEN": "tok-9f8e7d"})
        try:
            # The server got the value (its answer is masked too: the model never sees it either).
            assert (await server.call("getenv", {"name": "SECRET_TOKEN"})).text == "***"
        finally:
            await server.close()
    asyncio.run(main())
    assert "s: test server up ***" in caplog.text  # the server printed it on stderr: masked in the log
    assert "tok-9f8e7d" not in caplog.text


def test_a_missing_command_is_shown_with_what_to_do_and_disabled_tools_are_left_out():
    async def main():
        hub = McpHub(McpSettings(servers={
            "gone": validate_server("gone", {"command": "no-such-mcp-server-xyz"}, "t"),
            "time": validate_server("time", {"command": sys.executable, "args": ["-m", "mcp_server_time"],
                                             "tools": {"convert_time": {"enabled": False}}}, "t")}))
        try:
            tools = await hub.list_tools()
            assert [t.name for t in tools] == ["get_current_time"]
            gone = {s.name: s for s in hub.statuses()}["gone"]
            assert gone.state == "failed" and "'no-such-mcp-server-xyz' was not found" in gone.last_error
        finally:
            await hub.close()
    asyncio.run(main())
