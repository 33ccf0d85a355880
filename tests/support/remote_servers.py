"""Real servers on loopback for the remote-engine tests (tests/test_remote*.py) and the bench:

- `LlamaCppServer`: llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`,
  the [server] extra of the pinned 0.3.36) serving the bundled model, a third-party engine.
- `JarvisServe`: another `jarvis serve` process, to be a remote (and a replica one can kill).
- `CountingProxy`: an aiohttp reverse proxy that counts requests in flight upstream (the most at
  once) and, per request, the stream events it relayed and whether the client left early.
- `SlowServer`: lists a model, then never answers a completion within any sane timeout.
Each runs until stopped; tests start them once per module.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.bench.llama_server import LlamaCppServer, child_env, free_port, wait_http  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parent.parent.parent


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    return free_port()


class JarvisServe:
    """Another `jarvis serve` in its own process (port 0; the URL is read from its first line)."""

    def __init__(self, data_dir: Path, *extra_env: tuple[str, str]):
        self.data_dir = data_dir
        self.extra_env = dict(extra_env)
        self.proc: subprocess.Popen | None = None
        self.url = ""

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def __enter__(self) -> "JarvisServe":
        env = child_env()
        env["PYTHONPATH"] = str(ROOT)
        env.update({"JARVIS_GENERAL_DATA_DIR": str(self.data_dir), "JARVIS_SERVER_PORT": "0",
                    "JARVIS_ENGINE_N_THREADS": "1", "JARVIS_ENGINE_CONTEXT_LENGTH": "512",
                    "JARVIS_ENGINE_BATCH_SIZE": "2", "JARVIS_CACHE_ENABLED": "false", **self.extra_env})
        self.proc = subprocess.Popen([sys.executable, "-m", "jarvis", "serve"], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        try:
            line = self.proc.stdout.readline()
            m = re.search(r"serving on (http://\S+) ", line)
            if not m:
                raise RuntimeError(f"jarvis serve said {line!r}")
            self.url = m.group(1)
            wait_http(self.base_url + "/models", 60, self.proc)
        except BaseException:
            self.__exit__()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, as when a machine or a process dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


class _LoopThread:
    """An asyncio loop on a thread running one aiohttp app."""

    def __init__(self, port: int = 0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="remote-test-server", daemon=True)
        self.port = port
        self._runner = None

    def _app(self):
        raise NotImplementedError

    async def _start(self) -> None:
        from aiohttp import web

        self._runner = web.AppRunner(self._app(), handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Proxied:
    path: str
    body: bytes = b""
    events: int = 0  # stream events relayed to the client
    finished: bool = False  # upstream sent its whole answer
    client_left: bool = False  # the client closed before the answer ended


@dataclass
class ProxyCounts:
    in_flight: int = 0
    max_in_flight: int = 0
    requests: list[Proxied] = field(default_factory=list)


class CountingProxy(_LoopThread):
    """Forwards /v1/* to `upstream` (a root URL), streaming, and counts on the server side."""

    def __init__(self, upstream_root: str):
        super().__init__()
        self.upstream = upstream_root
        self.counts = ProxyCounts()
        self._session = None

    def reset(self) -> None:
        self.counts = ProxyCounts()

    def _app(self):
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _forward(self, request):
        import aiohttp
        from aiohttp import web

        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = await request.read()
        counted = request.method == "POST"
        entry = Proxied(request.path, body)
        if counted:
            self.counts.requests.append(entry)
            self.counts.in_flight += 1
            self.counts.max_in_flight = max(self.counts.max_in_flight, self.counts.in_flight)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
            async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                             headers=headers) as up:
                response = web.StreamResponse(status=up.status,
                                              headers={"Content-Type": up.headers.get("Content-Type", "")})
                await response.prepare(request)
                async for line in up.content:
                    if line.startswith(b"data:"):
                        entry.events += 1
                    await response.write(line)
                entry.finished = True
                await response.write_eof()
                return response
        except (asyncio.CancelledError, ConnectionResetError):
            entry.client_left = True
            raise
        finally:
            if counted:
                self.counts.in_flight -= 1

    def __exit__(self, *exc) -> None:
        if self._session is not None:
            asyncio.run_coroutine_threadsafe(self._session.close(), self.loop).result(10)
        super().__exit__(*exc)


VLLM_METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="big-70b"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="big-70b"} 5.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="big-70b"} 0.42
"""


class VllmMetricsServer(_LoopThread):
    """What this machine cannot run (vLLM needs a GPU): its model list and its /metrics text, with
    vLLM's own metric names, so the monitor has a vLLM-shaped server to read."""

    def _app(self):
        from aiohttp import web

        async def models(request):
            return web.json_response({"object": "list", "data": [{"id": "big-70b", "object": "model",
                                                                  "created": 0, "owned_by": "vllm"}]})

        async def metrics(request):
            return web.Response(text=VLLM_METRICS, content_type="text/plain")

        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_get("/metrics", metrics)
        return app


class SlowServer(_LoopThread):
    """Lists one model at once; a completion is answered only after `delay_s`."""

    def __init__(self, delay_s: float = 30.0):
        super().__init__()
        self.delay_s = delay_s

    def _app(self):
        from aiohttp import web

        async def models(request):
            return web.json_response({"object": "list", "data": [{"id": "sleepy", "object": "model",
                                                                  "created": 0, "owned_by": "slow"}]})

        async def slow(request):
            await asyncio.sleep(self.delay_s)
            return web.json_response({"error": {"message": "too late"}}, status=500)

        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/chat/completions", slow)
        app.router.add_post("/v1/completions", slow)
        return app


def read_two_events_then_leave(base_url: str, model: str, max_tokens: int) -> None:
    """A streaming client that reads two SSE events of a long completion and then hangs up."""
    import aiohttp

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(base_url + "/completions", json={
                "model": model, "prompt": "1, 2, 3, 4, 5,", "max_tokens": max_tokens, "temperature": 0,
                "stream": True, "cache": False})
            assert resp.status == 200
            seen = 0
            while seen < 2:
                if (await resp.content.readline()).startswith(b"data: {"):
                    seen += 1
            resp.close()

    asyncio.run(run())


def with_remote(settings, name: str, base_url: str, **fields):
    """settings plus [remotes.NAME] with base_url and any other field (validated like a file's)."""
    from jarvis.remote.settings import RemoteSettings

    remote = RemoteSettings(base_url=base_url, **fields)
    return settings.model_copy(update={"remotes": {**settings.remotes, name: remote}})
