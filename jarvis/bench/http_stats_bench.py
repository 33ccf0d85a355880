"""How fast the local stats endpoint answers, and what the 1 Hz sampler costs. Not a test.

    .venv/bin/python -m jarvis.bench.http_stats_bench [--rate 200] [--duration 5]

The server runs in a child process (as in the desktop app, where it shares the loop with the UI,
not with its client), preloaded with 10 000 requests so percentiles sort a real window. The client
sends at a fixed rate (open loop: a slow answer does not slow the senders) to /health (the
baseline: the same middlewares, no stats work), /api/performance/stats and /metrics in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time

import aiohttp
import psutil

from jarvis.config import ServerSettings
from jarvis.http.app import create_app, start_server
from jarvis.http.stats_source import HubStatsSource
from jarvis.telemetry import PerfMonitor, RecordBus, RequestRecord, SystemSampler, TelemetryHub
from jarvis.telemetry.window import percentile

PRELOADED_REQUESTS = 10_000
LIVE_RECORDS_PER_S = 50  # an engine thread keeps emitting while the client reads
ENDPOINTS = ("/health", "/api/performance/stats", "/metrics")


def fake_request(i: int, rng: random.Random) -> RequestRecord:
    latency = rng.lognormvariate(6, 0.6)
    return RequestRecord(request_id=str(i), model="bench", total_ms=latency, ttft_ms=latency / 8,
                         queue_ms=rng.random() * 20, prompt_tokens=40, completion_tokens=64,
                         decode_tokens_per_s=80, inter_token_ms=(12.0,) * 8, cache="hit" if i % 5 == 0 else "miss")


def preloaded_hub() -> tuple[TelemetryHub, RecordBus]:
    bus = RecordBus()
    hub = TelemetryHub(perf=PerfMonitor())
    bus.subscribe(hub.perf.observe)
    rng = random.Random(1)
    for i in range(PRELOADED_REQUESTS):
        bus.emit(fake_request(i, rng))
    return hub, bus


def emit_live(bus: RecordBus, stop: threading.Event) -> None:
    rng, i = random.Random(2), PRELOADED_REQUESTS
    while not stop.wait(1 / LIVE_RECORDS_PER_S):
        bus.emit(fake_request(i, rng))
        i += 1


async def serve() -> None:
    hub, bus = preloaded_hub()
    app = create_app(HubStatsSource(hub), ServerSettings(port=0), bus=bus)
    server = await start_server(app, "127.0.0.1", 0)
    ticker = asyncio.create_task(hub.run(1.0))
    stop = threading.Event()
    engine = threading.Thread(target=emit_live, args=(bus, stop), name="fake-engine")
    engine.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    stop.set()
    engine.join()
    ticker.cancel()
    await server.close()


async def load(url: str, rate: float, duration: float) -> dict:
    latencies: list[float] = []
    errors = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
        except aiohttp.ClientError:
            errors += 1
        latencies.append((time.perf_counter() - started) * 1000)

    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:  # warm the connection and the route
            await resp.read()
        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * duration)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(session)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "achieved_rps": round(len(latencies) / wall, 1),
            "p50_ms": round(percentile(latencies, 50), 3), "p95_ms": round(percentile(latencies, 95), 3),
            "p99_ms": round(percentile(latencies, 99), 3), "max_ms": round(latencies[-1], 3)}


def sampler_cost(ticks: int = 50) -> dict:
    """CPU time of one tick (psutil + NVML probe + percentiles over a 10k window) as % of a core at 1 Hz."""
    hub, _ = preloaded_hub()
    hub.sampler = SystemSampler()
    hub.tick()  # first tick pays one-off imports and NVML probing
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for _ in range(ticks):
        hub.tick()
    cpu_ms = (time.process_time() - cpu_start) * 1000 / ticks
    wall_ms = (time.perf_counter() - wall_start) * 1000 / ticks
    hub.close()
    return {"ticks": ticks, "cpu_ms_per_tick": round(cpu_ms, 3), "wall_ms_per_tick": round(wall_ms, 3),
            "core_pct_at_1hz": round(cpu_ms / 10, 3)}


async def bench(rate: float, duration: float) -> dict:
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "jarvis.bench.http_stats_bench", "--serve",
                                                 stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        port = int(await child.stdout.readline())
        server_process = psutil.Process(child.pid)
        results = {}
        for path in ENDPOINTS:
            cpu_before, wall_before = server_process.cpu_times(), time.perf_counter()
            results[path] = await load(f"http://127.0.0.1:{port}{path}", rate, duration)
            cpu_after = server_process.cpu_times()
            busy = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
            results[path]["server_core_pct"] = round(100 * busy / (time.perf_counter() - wall_before), 1)
    finally:
        child.stdin.close()
        await child.wait()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jarvis bench --suite http-stats", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second per endpoint")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per endpoint")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve())
        return 0

    http = asyncio.run(bench(args.rate, args.duration))
    sampler = sampler_cost()
    summary = {"bench": "http_stats", "rate": args.rate, "duration_s": args.duration, "http": http, "sampler": sampler}
    if args.json:
        print(json.dumps(summary))
        return 0
    baseline = http["/health"]["p99_ms"]
    print(f"HTTP at {args.rate:g} req/s for {args.duration:g} s per endpoint, loopback, "
          f"{PRELOADED_REQUESTS} requests in the window, {LIVE_RECORDS_PER_S} more recorded per second")
    print(f"{'endpoint':<26}{'rps':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'p99/health':>12}{'srv core%':>11}{'errors':>8}")
    for path, r in http.items():
        print(f"{path:<26}{r['achieved_rps']:>8}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{r['max_ms']:>9.2f}{r['p99_ms'] / baseline:>12.2f}{r['server_core_pct']:>11}{r['errors']:>8}")
    print(f"sampler: {sampler['cpu_ms_per_tick']} ms CPU per tick ({sampler['wall_ms_per_tick']} ms wall) "
          f"= {sampler['core_pct_at_1hz']} % of one core at 1 Hz")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
