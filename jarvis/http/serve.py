"""`jarvis serve`: the local endpoint without the window, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from typing import TYPE_CHECKING

from jarvis.config import Settings

if TYPE_CHECKING:
    from jarvis.engine.early_open import EarlyOpen


async def _serve(settings: Settings, host: str | None, port: int | None, mcp: bool = False,
                 startup: StartUp | None = None, early: EarlyOpen | None = None) -> int:
    from jarvis.runtime import API_ROUTES, Runtime

    # Named, not imported: the routes' modules (and aiohttp) are imported while the model loads.
    runtime = Runtime(settings, registrars=[API_ROUTES])
    runtime.assistant.manager.early_open = early  # the warm-up's load takes it (or close frees it)
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
        if startup is not None:  # listening (or not, with the reason below): start-up is over
            startup.end()
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


# The GIL's switch interval while starting (Python's default is 5 ms): see StartUp.
STARTUP_SWITCH_INTERVAL_S = 0.001


class StartUp:
    """How the interpreter runs while `jarvis serve` starts, until it listens (end()).

    - No cyclic collection: imports on the main thread, the HTTP stack's on a worker and the
      model's load make ~130k long-lived objects and few cycles, and the collector's passes over
      them were ~35-55 ms of GIL-held time before the first token (a full pass alone 15-25 ms).
      end() freezes what start-up made (later passes skip it) and switches collection back on;
      the ~3k objects of start-up garbage (~0.5 MB: dropped classes, closures) stay frozen with
      it, once, instead of a full pass (40-60 ms) for them. Left alone if collection was off.
    - A 1 ms GIL switch interval: start-up is several threads taking turns with the GIL (the
      loop, the HTTP imports, the catalog's scan, the loader between its llama.cpp calls), and a
      thread that wants the GIL back after I/O or a native call waited up to the 5 ms interval
      behind a thread busy importing, at every turn: ~90 ms of `jarvis serve`'s launch to first
      token (measured 1 ms against 5 ms, alternating; 0.2 ms gained nothing more). Restored at end().
    """

    def __init__(self) -> None:
        self.collects = gc.isenabled()
        self.switch_interval = sys.getswitchinterval()
        self.over = False
        if self.collects:
            gc.disable()
        sys.setswitchinterval(min(self.switch_interval, STARTUP_SWITCH_INTERVAL_S))

    def end(self) -> None:
        if self.over:
            return
        self.over = True
        sys.setswitchinterval(self.switch_interval)
        if self.collects:
            gc.freeze()
            gc.enable()


def open_default_early(settings: Settings) -> EarlyOpen | None:
    """Begin opening the model the warm-up will load, now, when it is known without a scan of the
    models folders: the bundled model, the default when none is configured (the catalog's rule).
    The rest of `jarvis serve` (~0.3 s of imports on one core: the runtime, the HTTP stack) is
    imported while llama.cpp reads the weights and clears the KV cache on the other; measured on
    2 cores, launch to first token (README, start-up). None where that is not the case."""
    if settings.general.default_model or "default" not in settings.models.warmup:
        return None
    from jarvis.catalog.model_info import bundled_model_path

    path = bundled_model_path()
    if path is None:
        return None
    from jarvis.engine.config import EngineConfig
    from jarvis.engine.early_open import EarlyOpen

    return EarlyOpen(path, EngineConfig.from_settings(settings))  # llama.cpp is imported on its thread


def serve(settings: Settings, host: str | None = None, port: int | None = None, mcp: bool = False) -> int:
    startup = StartUp()
    early = open_default_early(settings)
    try:
        return asyncio.run(_serve(settings, host, port, mcp, startup, early))
    finally:
        startup.end()  # when start-up failed before it listened
        if early is not None:  # start-up failed before a manager took charge of it: a no-op otherwise
            early.discard()
