"""Everything one JARVIS process runs, wired once: the Assistant, telemetry (PerfMonitor, the
1 Hz history, the JSONL request log) and the local HTTP endpoint. `jarvis serve` and the desktop
app both start a Runtime; tests start one on port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sqlite3
from dataclasses import asdict
from typing import TYPE_CHECKING, Callable, Iterable, Union

from jarvis.assistant import Assistant
from jarvis.config import Settings
from jarvis.http.stats_source import HubStatsSource
from jarvis.telemetry import RecordBus
from jarvis.telemetry.perf import PerfMonitor
from jarvis.telemetry.request_log import RequestLog
from jarvis.telemetry.responsiveness import HeartbeatMeter, Watch, loop_heartbeat
from jarvis.telemetry.rollups import RollupStore
from jarvis.telemetry.series import TelemetryHub

if TYPE_CHECKING:
    from jarvis.http.app import RunningServer

log = logging.getLogger("jarvis.runtime")
# What adds routes to the HTTP app: a callable `(runtime) -> (app -> None)`, or the name of one as
# "module:attribute", imported when the server starts, off the loop (import_registrars).
RegistrarFactory = Union[Callable, str]
# The routes `jarvis serve` and the desktop serve: the OpenAI API, which adds Messages and Responses.
API_ROUTES = "jarvis.http.openai_routes:openai_routes"


def import_registrars(factories: Iterable[RegistrarFactory]) -> list[Callable]:
    """The HTTP stack (aiohttp, the app, every named registrar's module), imported here. Runtime
    calls this on a worker thread: `jarvis serve` names its routes as strings, so the ~0.3 s of
    these imports run while the default model loads on the loader thread (llama.cpp's load
    releases the GIL), instead of before that load can begin."""
    importlib.import_module("jarvis.http.app")
    resolved = []
    for factory in factories:
        if isinstance(factory, str):
            module, _, attribute = factory.partition(":")
            factory = getattr(importlib.import_module(module), attribute)
        resolved.append(factory)
    return resolved


class Runtime:
    def __init__(self, settings: Settings, *, registrars: Iterable[RegistrarFactory] = ()):
        self.settings = settings
        self.bus = RecordBus()
        self.assistant = Assistant(settings, bus=self.bus)
        t = settings.telemetry
        self.hub = TelemetryHub(perf=PerfMonitor(window_s=t.window_s), history_s=t.history_s,
                                loaded_models=lambda: len(self.assistant.manager.loaded()))
        self._unsubscribe = [self.bus.subscribe(self.hub.perf.observe),
                             self.bus.subscribe(self.hub.responsiveness.observe),
                             self.bus.subscribe(self.hub.recent.observe)]
        self.hub.recent.log_prompts = t.log_prompts
        if t.rollup_days > 0:
            try:
                self.hub.rollups = RollupStore(settings.rollups_path, retention_s=t.rollup_days * 86400)
                self._unsubscribe.append(self.bus.subscribe(self.hub.rollups.observe))
            except (OSError, sqlite3.Error) as e:  # e.g. an unwritable data folder: the app still runs
                log.warning("Per-minute telemetry history is off: %s cannot be opened (%s).", settings.rollups_path, e)
        self._heartbeat_task: asyncio.Task | None = None
        self.request_log = RequestLog(settings.request_log_path, max_bytes=int(t.request_log_max_mb * 2**20),
                                      backups=t.request_log_backups, log_prompts=t.log_prompts)
        self._unsubscribe.append(self.bus.subscribe(self.request_log.observe))
        self.stats = HubStatsSource(self.hub, models=self.models_stats, cache=self.cache_stats)
        self._registrars = list(registrars)
        self.server: "RunningServer | None" = None
        self.server_error: str | None = None  # e.g. the port is busy: the app still runs
        self._hub_task: asyncio.Task | None = None
        # The tools API requests may have the server run ("jarvis_tools": true): `jarvis serve --mcp`
        # sets an AlwaysAllowed over its MCP hub; None = the API offers none of its own.
        self.tool_source = None

    # ---- what the stats endpoint and the monitor read -------------------------------------
    def models_stats(self) -> dict:
        return {"loaded_models": self.assistant.manager.loaded(), "loading": self.assistant.manager.loading(),
                "catalog": [m.summary() for m in self.assistant.catalog.snapshot().models],
                "crashed_models": self.assistant.manager.crashes(),
                "keep_alive_s": self.assistant.manager.keep_alive_s,
                "servers": self.assistant.backends.status()}

    def cache_stats(self) -> dict:
        return asdict(self.assistant.cache.stats())

    def heartbeat_meter(self, source: str) -> HeartbeatMeter:
        """A meter whose stalls reach the monitor, the stats JSON and /metrics. The desktop beats
        a "ui" one from a QTimer (the core never imports Qt); `start` beats the "loop" one."""
        return HeartbeatMeter(source, self.settings.telemetry.heartbeat_ms or 8, self.bus.emit)

    # ---- life cycle ------------------------------------------------------------------------
    async def start(self, *, http: bool | None = None, warmup: bool = True, host: str | None = None,
                    port: int | None = None, heartbeat_when_watched: bool = False) -> None:
        """`heartbeat_when_watched`: the loop's heartbeat runs only while someone reads the stats
        (`jarvis serve`: nobody may watch); the desktop watches itself and keeps it always on."""
        self._hub_task = asyncio.get_running_loop().create_task(self.hub.run())
        if self.settings.telemetry.heartbeat_ms:
            meter = self.heartbeat_meter("loop")
            watch = self.stats.watch if heartbeat_when_watched else None
            self._heartbeat_task = asyncio.get_running_loop().create_task(loop_heartbeat(meter, watch))
        await self.assistant.start(warmup=warmup)  # the warm-up load begins now, on the loader thread
        if http if http is not None else self.settings.server.enabled:
            await self.start_http(host, port)
        # Listening already (/health answers): only then wait for the first scan of the models
        # folders, on the catalog's thread, so whoever started us finds the catalog filled in.
        await self.assistant.catalog.ready()

    async def start_http(self, host: str | None = None, port: int | None = None) -> None:
        host = host or self.settings.server.host
        port = self.settings.server.port if port is None else port
        server_settings = self.settings.server.model_copy(update={"host": host})
        registrars = await asyncio.to_thread(import_registrars, self._registrars)
        from jarvis.http.app import create_app, start_server  # imported just above, on the thread

        app = create_app(self.stats, server_settings, bus=self.bus,
                         registrars=[r(self) for r in registrars])
        try:
            self.server = await start_server(app, host, port)
        except OSError as e:
            self.server_error = (f"The local HTTP endpoint could not start on {host}:{port} ({e.strerror or e}). "
                                 "Another program may use that port: set server.port in settings.")
            log.warning("%s", self.server_error)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
        await self.assistant.close()
        for task in (self._hub_task, self._heartbeat_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        # Each of these blocks (NVML, SQLite, the log writer's join): on a thread, never the loop.
        await asyncio.to_thread(self.hub.close)
        if self.hub.rollups is not None:  # the minute in progress is kept too
            await asyncio.to_thread(self.hub.rollups.flush_and_close)
        await asyncio.to_thread(self.request_log.close)  # writes what is queued, joins its writer
