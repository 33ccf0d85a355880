import asyncio
import contextlib
import logging

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jarvis.config import ServerSettings
from jarvis.http.app import create_app, start_server
from jarvis.http.stats_source import HubStatsSource
from jarvis.telemetry import (GpuProbe, ModelRecord, PerfMonitor, QueueRecord, RecordBus, RequestRecord,
                              StepRecord, SystemSampler, TelemetryHub)

from tests.fake_nvml import GIB, FakeNvml

JSON = {"Content-Type": "application/json"}


@contextlib.asynccontextmanager
async def serve(**server_settings):
    bus = RecordBus()
    hub = TelemetryHub(perf=PerfMonitor(), sampler=SystemSampler(gpu=GpuProbe(nvml=FakeNvml())))
    bus.subscribe(hub.perf.observe)
    source = HubStatsSource(hub, cache=lambda: {"size": 3, "max_size": 200})
    settings = ServerSettings(**{"host": "127.0.0.1", "port": 0, **server_settings})
    app = create_app(source, settings, bus=bus)
    server = await start_server(app, settings.host, settings.port)
    try:
        async with aiohttp.ClientSession(server.url) as session:
            yield session, bus, hub
    finally:
        await server.close()
        await asyncio.to_thread(hub.close)  # NVML (faked) is called off the loop only


def run(coro):
    return asyncio.run(coro)


def feed_requests(bus: RecordBus) -> None:
    bus.emit(ModelRecord(model="m", event="loaded", load_ms=300))
    for i in range(1, 1001):  # latencies 1..1000 ms
        bus.emit(RequestRecord(request_id=str(i), model="m", total_ms=float(i), ttft_ms=i / 10, queue_ms=2.0,
                               prompt_tokens=5, completion_tokens=10, inter_token_ms=(12.0, 14.0), decode_tokens_per_s=80.0,
                               cache="hit" if i % 4 == 0 else "miss"))
    bus.emit(RequestRecord(request_id="bad", model="m", status="error", error_kind="QueueFull", total_ms=0.5))
    bus.emit(StepRecord(model="m", active_slots=3, queue_depth=4, batch_tokens=3, decode_tokens=3,
                        prefill_tokens=0, step_ms=9))
    bus.emit(QueueRecord(model="m", event="rejected", queue_depth=64))


def test_performance_stats_percentiles_from_the_bus():
    async def main():
        async with serve() as (session, bus, hub):
            feed_requests(bus)
            async with session.get("/api/performance/stats") as resp:
                assert resp.status == 200
                assert float(resp.headers["X-Process-Time"]) >= 0
                stats = await resp.json()
        latency = stats["requests"]["latency"]
        assert latency["count"] == 1001 and latency["lifetime_count"] == 1001
        assert latency["p50_ms"] == pytest.approx(500.0)  # 0.5, then 1..1000
        assert latency["p99_ms"] == pytest.approx(990.0)
        assert latency["success_rate"] == pytest.approx(1000 / 1001)
        assert stats["requests"]["ttft"]["p95_ms"] == pytest.approx(95.005)
        assert stats["queue"]["rejections"] == 1 and stats["queue"]["max_depth"] == 64
        assert stats["queue"]["max_concurrent"] == 3 and stats["queue"]["avg_wait_ms"] == pytest.approx(2.0 * 750 / 751)  # cache hits never queue
        # The failed request never looked the cache up: neither a hit nor a miss.
        assert stats["cache"] == {"hits": 250, "misses": 750, "hit_rate": pytest.approx(250 / 1000),
                                  "size": 3, "max_size": 200}
        assert stats["counters"]["errors.QueueFull"] == 1
        rate = stats["requests"]["decode_tokens_per_s"]  # a rate: its keys say tokens/s, not ms
        assert rate["p50_tokens_per_s"] == pytest.approx(80.0) and not any(key.endswith("_ms") for key in rate)

    run(main())


def test_system_models_and_history_routes():
    async def main():
        async with serve() as (session, bus, hub):
            async with session.get("/api/system/metrics") as resp:
                assert (await resp.json())["timestamp"] is None  # no tick yet: said, not invented
            bus.emit(ModelRecord(model="m", event="loaded", load_ms=300))
            await asyncio.to_thread(hub.tick)
            await asyncio.to_thread(hub.tick)
            async with session.get("/api/system/metrics") as resp:
                system = await resp.json()
            async with session.get("/api/models/stats") as resp:
                models = await resp.json()
            async with session.get("/api/performance/history", params={"seconds": "600"}) as resp:
                history = await resp.json()
            async with session.get("/api/performance/history", params={"seconds": "soon"}) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["code"] == "invalid_parameter"
        assert system["gpu_available"] and system["gpus"][0]["name"] == "NVIDIA H100"
        assert 0 < system["ram_percent"] <= 100
        assert models["loaded"] == ["m"] and models["loads"] == 1 and models["load_ms"]["max_ms"] == 300
        assert len(history["points"]) == 2 and history["points"][-1]["loaded_models"] == 1

    run(main())


def test_metrics_parse_back():
    async def main():
        async with serve() as (session, bus, hub):
            feed_requests(bus)
            await asyncio.to_thread(hub.tick)
            async with session.get("/metrics") as resp:
                assert resp.status == 200 and resp.content_type == "text/plain"
                return await resp.text()

    families = {f.name: f for f in text_string_to_metric_families(run(main()))}

    def value(family, sample_name, **labels):
        return next(s.value for s in families[family].samples
                    if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("jarvis_requests", "jarvis_requests_total", model="m", status="ok") == 1000
    assert value("jarvis_requests", "jarvis_requests_total", status="error") == 1
    assert value("jarvis_request_duration_seconds", "jarvis_request_duration_seconds_count") == 1001
    assert value("jarvis_request_duration_seconds", "jarvis_request_duration_seconds_bucket", le="0.1") == 101
    assert value("jarvis_time_to_first_token_seconds", "jarvis_time_to_first_token_seconds_count") == 1000
    assert value("jarvis_inter_token_latency_seconds", "jarvis_inter_token_latency_seconds_count") == 2000
    # The 250 cache hits (every 4th) replayed stored replies: they generated no tokens.
    assert value("jarvis_prompt_tokens", "jarvis_prompt_tokens_total") == 750 * 5
    assert value("jarvis_generation_tokens", "jarvis_generation_tokens_total") == 750 * 10
    assert value("jarvis_cache_hits", "jarvis_cache_hits_total") == 250
    assert value("jarvis_cache_misses", "jarvis_cache_misses_total") == 750
    assert value("jarvis_queue_rejections", "jarvis_queue_rejections_total") == 1
    assert value("jarvis_queue_size", "jarvis_queue_size", model="m") == 4
    assert value("jarvis_active_slots", "jarvis_active_slots") == 3
    assert value("jarvis_loaded_models", "jarvis_loaded_models") == 1
    assert value("jarvis_gpu_memory_used_bytes", "jarvis_gpu_memory_used_bytes", gpu="1") == 3 * GIB


def test_foreign_host_header_is_refused():
    async def main():
        async with serve() as (session, _, _):
            for host in ("localhost", "localhost:5050", "127.0.0.1:1", "[::1]:80", "[::1]"):
                async with session.get("/health", headers={"Host": host}) as resp:
                    assert resp.status == 200, host
            async with session.get("/api/performance/stats", headers={"Host": "evil.com"}) as resp:
                assert resp.status == 403 and "X-Process-Time" in resp.headers
                error = (await resp.json())["error"]
        assert error["type"] == "permission_error" and "evil.com" in error["message"]

    run(main())


def test_token_guards_everything_but_health():
    async def main():
        async with serve(token="s3cret") as (session, _, _):
            async with session.get("/health") as resp:
                assert resp.status == 200
            async with session.get("/api/performance/stats") as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
                assert (await resp.json())["error"]["type"] == "authentication_error"
            async with session.get("/metrics", headers={"Authorization": "Bearer wrong"}) as resp:
                assert resp.status == 401
            async with session.get("/api/performance/stats", headers={"Authorization": "Bearer s3cret"}) as resp:
                assert resp.status == 200

    run(main())


def test_oversize_body_and_unknown_path_get_json_errors():
    async def main():
        async with serve(max_body_kb=1) as (session, _, _):
            async with session.post("/api/performance/stats", data=b"x" * 4096) as resp:
                assert resp.status == 413 and "X-Process-Time" in resp.headers
                too_large = (await resp.json())["error"]
            async with session.get("/no/such/thing") as resp:
                assert resp.status == 404 and "X-Process-Time" in resp.headers
                not_found = (await resp.json())["error"]
            async with session.post("/health", data=b"{}") as resp:
                assert resp.status == 405
                assert resp.headers["Allow"] == "GET,HEAD"
        assert too_large["code"] == "request_too_large" and "4096" in too_large["message"]
        assert not_found == {"message": "No route for GET /no/such/thing.", "type": "invalid_request_error",
                             "param": None, "code": "not_found"}

    run(main())


def test_extra_routes_and_jarvis_errors_map_to_openai_errors():
    from aiohttp import web

    from jarvis.errors import QueueFull

    async def full(request):
        raise QueueFull(limit=64, retry_after_s=2)

    async def crash(request):
        raise RuntimeError("boom")

    async def echo(request):
        return web.json_response(await request.json())

    async def chunks():
        for _ in range(4):
            yield b" " * 1024

    def register(app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", full)
        app.router.add_post("/v1/echo", echo)
        app.router.add_get("/v1/crash", crash)

    async def main():
        hub = TelemetryHub(sampler=SystemSampler(gpu=GpuProbe(nvml=FakeNvml(fail_init=True))))
        app = create_app(HubStatsSource(hub), ServerSettings(port=0, max_body_kb=2), registrars=[register])
        server = await start_server(app, "127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession(server.url) as session:
                async with session.post("/v1/chat/completions", json={}) as resp:
                    assert resp.status == 429 and resp.headers["Retry-After"] == "2"
                    body = await resp.json()
                async with session.post("/v1/echo", data=chunks(), headers=JSON) as resp:  # chunked: no Content-Length
                    assert resp.status == 413
                    assert (await resp.json())["error"]["code"] == "request_too_large"
                async with session.get("/v1/crash") as resp:
                    assert resp.status == 500
                    crashed = (await resp.json())["error"]
        finally:
            await server.close()
        return body, crashed

    body, crashed = run(main())
    assert body["error"]["code"] == "queue_full" and body["error"]["type"] == "rate_limit_error"
    assert "boom" not in crashed["message"] and crashed["type"] == "server_error"  # logged, not leaked


def test_non_loopback_bind_is_warned_about(caplog):
    async def main():
        hub = TelemetryHub(sampler=SystemSampler(gpu=GpuProbe(nvml=FakeNvml(fail_init=True))))
        app = create_app(HubStatsSource(hub), ServerSettings(host="0.0.0.0", port=0))
        server = await start_server(app, "0.0.0.0", 0)
        await server.close()
        return server.port

    with caplog.at_level(logging.WARNING, logger="jarvis.http"):
        assert run(main()) > 0
    assert any("reachable from the network" in r.getMessage() for r in caplog.records)
