"""A real Runtime (assistant + HTTP endpoint with the OpenAI routes) on 127.0.0.1, port 0, with
its asyncio loop in a background thread, so tests and the HTTP fuzz can talk to it like any outside
program would (the official `openai` client, aiohttp, raw sockets)."""

from __future__ import annotations

import asyncio
import threading

from jarvis.http.openai_routes import openai_routes
from jarvis.runtime import Runtime


class ServerThread:
    def __init__(self, settings, preload: bool = True) -> None:
        self.settings = settings
        self.preload = preload  # load the default model before the first request
        self.loop = asyncio.new_event_loop()
        # The "jarvis-" prefix: conftest fails a test that leaves this thread running.
        self.thread = threading.Thread(target=self.loop.run_forever, name="jarvis-test-server", daemon=True)
        self.runtime: Runtime | None = None
        self.model = ""

    def call(self, coro, timeout: float = 120):
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        try:
            self.runtime = self.call(self._start())
        except BaseException:
            self.__exit__()
            raise
        return self

    async def _start(self) -> Runtime:
        runtime = Runtime(self.settings, registrars=[openai_routes])
        await runtime.start(http=True, warmup=False, host="127.0.0.1", port=0)
        self.model = runtime.assistant.default_model()
        if self.preload:
            await runtime.assistant.manager.load(self.model)
        return runtime

    def __exit__(self, *exc) -> None:
        if self.runtime is not None:
            self.call(self.runtime.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def port(self) -> int:
        return self.runtime.server.port

    @property
    def url(self) -> str:
        return self.runtime.server.url

    @property
    def base_url(self) -> str:
        return self.runtime.server.url + "/v1"

    def engine(self):
        return self.runtime.assistant.manager.engine_of(self.model)
