"""`jarvis serve`: the local endpoint without the window, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys

from jarvis.config import Settings


async def _serve(settings: Settings, host: str | None, port: int | None, mcp: bool = False,
                 resume_gc: bool = False) -> int:
    from jarvis.runtime import API_ROUTES, Runtime

    # Named, not imported: the routes' modules (and aiohttp) are imported while the model loads.
    runtime = Runtime(settings, registrars=[API_ROUTES])
    hub = None
    if mcp:  # the configured MCP tools with approval "always", for requests that send "jarvis_tools": true
        from jarvis.mcp.hub import McpHub
        from jarvis.tools.source import AlwaysAllowed

        hub = McpHub(settings.mcp)
        runtime.tool_source = AlwaysAllowed(hub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start(http=True, host=host, port=port, heartbeat_when_watched=True)
        if resume_gc:
            _end_startup_without_gc()
        if runtime.server is None:
            print(f"jarvis serve: {runtime.server_error}", file=sys.stderr)
            return 1
        print(f"JARVIS serving on {runtime.server.url} (OpenAI API at {runtime.server.url}/v1). Ctrl-C stops.",
              flush=True)
        if hub is not None:
            offered = [t.name for t in await runtime.tool_source.list_tools()]
            print(f"MCP tools for requests with \"jarvis_tools\": true: {', '.join(offered) or 'none'} (only tools "
                  "with approval = \"always\" are offered).", flush=True)
        await stop.wait()
        return 0
    finally:
        if hub is not None:
            await hub.close()
        await runtime.close()


def _end_startup_without_gc() -> None:
    """Start-up is over (listening; the warm-up load runs on its own): what it made stays out of
    every later pass (gc.freeze), and automatic collection is back. The ~3k objects of start-up
    garbage (about 0.5 MB: dropped classes, closures) are frozen with it, once, instead of paying
    a full pass (40-60 ms here) for them."""
    gc.freeze()
    gc.enable()


def serve(settings: Settings, host: str | None = None, port: int | None = None, mcp: bool = False) -> int:
    # No cyclic collection while starting: imports on the main thread, the HTTP stack's on a worker
    # and the model's load make ~130k long-lived objects and few cycles, and the collector's passes
    # over them were ~35 ms of GIL-held time on the way to the first token (a full pass alone
    # 15-25 ms). Frozen and switched back on once listening (_end_startup_without_gc).
    automatic = gc.isenabled()
    gc.disable()
    try:
        return asyncio.run(_serve(settings, host, port, mcp, resume_gc=automatic))
    finally:
        if automatic:
            gc.enable()
