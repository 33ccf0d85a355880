"""The SDK-written MCP test server (tests/support/mcp_test_server.py) as the tests start it:
over streamable HTTP in a subprocess, or as a stdio server table in a settings file."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

from tests.support.process import ROOT


@contextlib.contextmanager
def http_test_server():
    """The server over streamable HTTP on a free loopback port; yields its /mcp URL."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.mcp_test_server", "http"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # blocks until the server listens (or dies: "")
        assert line.startswith("PORT "), f"the test server did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}/mcp"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def stdio_settings_toml(*, extra: str = "", header: str = "") -> str:
    """A settings file with `[mcp] max_rounds = 1` and the server as `[mcp.servers.test]` over
    stdio; `extra` lines go into that table, `header` above everything."""
    return f"""{header}
[mcp]
max_rounds = 1
[mcp.servers.test]
command = {json.dumps(sys.executable)}
args = ["-m", "tests.support.mcp_test_server", "stdio"]
cwd = {json.dumps(str(ROOT))}
env = {{ PYTHONPATH = {json.dumps(str(ROOT))} }}
{extra}
"""
