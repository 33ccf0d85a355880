"""A small MCP server written with the SDK's server API, for the tests: over stdio
(`python -m tests.support.mcp_test_server stdio`) or streamable HTTP on loopback
(`... http`: it prints `PORT <n>` once it listens, then serves until killed).

Tools: echo, sleep (past a timeout), fail (raises), big (a 2 MB answer), pid, getenv, block (writes
"blocking" to stderr, then waits forever: the test kills the process mid-call) and grow, which
adds the tool `late` and tells the client its list changed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("jarvis-test", log_level="WARNING")


@app.tool(description="Return the text it is given")
def echo(text: str) -> str:
    return text


@app.tool(description="Wait for a number of seconds")
async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@app.tool(description="Always fails")
def fail() -> str:
    raise ToolError("the tool broke on purpose")


@app.tool(description="A very long answer")
def big() -> str:
    return "x" * (2 * 1024 * 1024)


@app.tool(description="This server's process id")
def pid() -> str:
    return str(os.getpid())


@app.tool(description="An environment variable of this server")
def getenv(name: str) -> str:
    return os.environ.get(name, "(unset)")


@app.tool(description="Never answers")
async def block() -> str:
    print("blocking", file=sys.stderr, flush=True)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:  # the client's notifications/cancelled
        print("block was cancelled", file=sys.stderr, flush=True)
        raise
    return "never"


def late() -> str:
    return "I arrived later"


@app.tool(description="Adds the tool `late`")
async def grow(ctx: Context) -> str:
    app.add_tool(late, description="A tool added at run time")
    await ctx.session.send_tool_list_changed()
    return "grown"


def main() -> None:
    if sys.argv[1:] == ["stdio"]:
        # Says its SECRET_TOKEN on stderr, as a careless server might: the client must mask it.
        print(f"test server up {os.environ.get('SECRET_TOKEN', '')}", file=sys.stderr, flush=True)
        app.run("stdio")
        return
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app.streamable_http_app(), log_level="warning", lifespan="on"))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
