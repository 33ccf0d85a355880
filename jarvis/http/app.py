"""The aiohttp application and its start-up on the running asyncio loop.

`create_app` builds the app; more routes (the OpenAI-compatible /v1) plug in through
`registrars`, callables that receive the app before it is frozen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from aiohttp import web

from jarvis.config import ServerSettings
from jarvis.http.cross_site import OriginPolicy, cors_headers
from jarvis.http.metrics import PrometheusMetrics, metrics_handler
from jarvis.http.security import is_loopback, security_middlewares
from jarvis.http.stats_routes import add_stats_routes
from jarvis.http.stats_source import StatsSource
from jarvis.telemetry.bus import RecordBus

log = logging.getLogger("jarvis.http")
METRICS = web.AppKey("metrics", PrometheusMetrics)
Registrar = Callable[[web.Application], None]


def create_app(stats_source: StatsSource, settings: ServerSettings, *, bus: RecordBus | None = None,
               registrars: Iterable[Registrar] = ()) -> web.Application:
    """`settings` is Settings.server. With a `bus`, /metrics counts every record emitted from now
    on (it unsubscribes when the app is cleaned up)."""
    max_body = settings.max_body_kb * 1024
    origins = OriginPolicy(settings.allowed_origins)
    app = web.Application(middlewares=security_middlewares(settings.host, settings.token, max_body, origins),
                          client_max_size=max_body)
    app.on_response_prepare.append(cors_headers(origins))
    add_stats_routes(app, stats_source)
    metrics = app[METRICS] = PrometheusMetrics()
    app.router.add_get("/metrics", metrics_handler(metrics, stats_source))
    if bus is not None:
        unsubscribe = bus.subscribe(metrics.observe)

        async def stop_metrics(_: web.Application) -> None:
            unsubscribe()

        app.on_cleanup.append(stop_metrics)
    for register in registrars:
        register(app)
    return app


@dataclass
class RunningServer:
    runner: web.AppRunner
    host: str
    port: int  # the bound port, also when 0 was asked for

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_server(app: web.Application, host: str, port: int, access_log: bool = False) -> RunningServer:
    """Serve `app` on the running loop. Port 0 picks a free port (see RunningServer.port)."""
    if not is_loopback(host):
        log.warning("The HTTP endpoint binds %s, which is reachable from the network: set server.host = "
                    "\"127.0.0.1\" to keep it local, or at least set server.token.", host)
    # handler_cancellation: a client that disconnects has its handler cancelled at once, which
    # cancels its request in the engine (sse.py); no handler has to watch its connection.
    runner = web.AppRunner(app, access_log=log if access_log else None, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    return RunningServer(runner=runner, host=host, port=bound_port)
