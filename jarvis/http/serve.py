"""`jarvis serve`: the local endpoint without the window, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from jarvis.config import Settings


async def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    from jarvis.http.openai_routes import openai_routes
    from jarvis.runtime import Runtime

    runtime = Runtime(settings, registrars=[openai_routes])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start(http=True, host=host, port=port, heartbeat_when_watched=True)
        if runtime.server is None:
            print(f"jarvis serve: {runtime.server_error}", file=sys.stderr)
            return 1
        print(f"JARVIS serving on {runtime.server.url} (OpenAI API at {runtime.server.url}/v1). Ctrl-C stops.",
              flush=True)
        await stop.wait()
        return 0
    finally:
        await runtime.close()


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    return asyncio.run(_serve(settings, host, port))
