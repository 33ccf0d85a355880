"""GET /health and the JSON stats routes, read from the app's StatsSource."""

from __future__ import annotations

import math
import time

from aiohttp import web

from jarvis.http.errors import error_response
from jarvis.http.stats_source import StatsSource
from jarvis.telemetry.export import to_csv

STATS_SOURCE = web.AppKey("stats_source", StatsSource)
_STARTED = web.AppKey("started_monotonic", float)
routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "uptime_s": round(time.monotonic() - request.app[_STARTED], 3)})


@routes.get("/api/performance/stats")
async def performance_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_SOURCE].performance_stats())


@routes.get("/api/system/metrics")
async def system_metrics(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_SOURCE].system_metrics())


@routes.get("/api/models/stats")
async def models_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_SOURCE].models_stats())


@routes.get("/api/performance/history")
async def history(request: web.Request) -> web.Response:
    raw = request.query.get("seconds")
    seconds = None
    if raw is not None:
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            return error_response(400, f"seconds={raw!r} must be a positive number.", "invalid_parameter")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        return error_response(400, f"format={fmt!r} must be json or csv.", "invalid_parameter")
    points = request.app[STATS_SOURCE].history(seconds)
    if fmt == "csv":
        return web.Response(text=to_csv(points), content_type="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="jarvis-history.csv"'})
    return web.json_response({"points": points})


@routes.get("/api/requests/recent")
async def recent_requests(request: web.Request) -> web.Response:
    """The last finished requests, newest first (the monitor's request explorer): ?limit=N, 1..1000."""
    raw = request.query.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        return error_response(400, f"limit={raw!r} must be a whole number from 1 to 1000.", "invalid_parameter")
    return web.json_response(request.app[STATS_SOURCE].recent_requests(limit))


def add_stats_routes(app: web.Application, source: StatsSource) -> None:
    app[STATS_SOURCE] = source
    app[_STARTED] = time.monotonic()
    app.add_routes(routes)
