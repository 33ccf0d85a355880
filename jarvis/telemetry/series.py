"""The 1 Hz history the System Monitor charts, and TelemetryHub, which owns and ticks it.

Each tick stores one frozen SeriesPoint in a bounded deque (nvitop's habit: the UI paints from
snapshots a background collector took; it never queries a device itself).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable

from jarvis.telemetry.perf import PerfMonitor
from jarvis.telemetry.recent import RecentRequests
from jarvis.telemetry.responsiveness import Responsiveness
from jarvis.telemetry.system import SystemSampler, SystemSnapshot

log = logging.getLogger("jarvis.telemetry")


@dataclass(frozen=True)
class SeriesPoint:
    timestamp: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    tokens_per_s: float  # completion tokens per second since the previous tick
    requests_per_s: float
    cache_hit_rate: float | None  # over PerfMonitor's window; None before any request
    queue_depth: int
    active_slots: int
    cpu_percent: float
    ram_percent: float
    process_rss_bytes: int
    gpu_util_pct: float | None  # mean over GPUs; None when there is no GPU
    gpu_mem_used_bytes: int | None  # summed over GPUs
    gpu_mem_total_bytes: int | None
    loaded_models: int
    # Heartbeat stalls in this second (telemetry/responsiveness.py); None where that heartbeat
    # does not run (the UI one runs only in the desktop).
    ui_stall_max_ms: float | None = None
    ui_stall_p99_ms: float | None = None
    loop_stall_max_ms: float | None = None
    loop_stall_p99_ms: float | None = None


class SeriesRing:
    """The last `history_s` points at one per second; older points fall off."""

    def __init__(self, history_s: int = 600) -> None:
        self._points: deque[SeriesPoint] = deque(maxlen=max(1, int(history_s)))
        self._lock = threading.Lock()

    def append(self, point: SeriesPoint) -> None:
        with self._lock:
            self._points.append(point)

    def points(self, seconds: float | None = None) -> list[SeriesPoint]:
        with self._lock:
            points = list(self._points)
        if seconds is None or not points:
            return points
        horizon = points[-1].timestamp - seconds
        return [p for p in points if p.timestamp > horizon]

    def latest(self) -> SeriesPoint | None:
        with self._lock:
            return self._points[-1] if self._points else None


class TelemetryHub:
    """Owns PerfMonitor, SystemSampler and the history; `tick()` adds one point.

    `loaded_models` is a callable giving the number of loaded models (telemetry cannot import the
    model manager); without one, the count comes from the ModelRecords PerfMonitor has seen.
    """

    def __init__(self, perf: PerfMonitor | None = None, sampler: SystemSampler | None = None,
                 history_s: int = 600, loaded_models: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.perf = perf if perf is not None else PerfMonitor()
        self.sampler = sampler if sampler is not None else SystemSampler()
        self.series = SeriesRing(history_s)
        self.responsiveness = Responsiveness(window_s=self.perf.window_s)  # subscribe .observe to the bus
        self.recent = RecentRequests()  # the last 1,000 requests (the explorer); subscribe .observe too
        self.rollups = None  # a RollupStore (per-minute rows in SQLite), set by the Runtime; fed by tick
        self._loaded_models = loaded_models or (lambda: len(self.perf.loaded_models()))
        self._clock = clock
        self._tick_lock = threading.Lock()
        self._previous: tuple[float, int, int] | None = None  # (time, completion tokens, requests)
        self._system: SystemSnapshot | None = None

    def tick(self) -> SeriesPoint:
        """Sample everything once. Blocking (psutil, NVML): call it from a thread."""
        with self._tick_lock:
            system = self.sampler.sample()
            now = self._clock()
            counters = self.perf.counters()
            tokens, requests = counters.get("tokens.completion", 0), counters.get("requests.total", 0)
            tokens_per_s = requests_per_s = 0.0
            if self._previous is not None and now > self._previous[0]:
                elapsed = now - self._previous[0]
                tokens_per_s = (tokens - self._previous[1]) / elapsed
                requests_per_s = (requests - self._previous[2]) / elapsed
            self._previous = (now, tokens, requests)
            self._system = system
            point = self._point(now, system, tokens_per_s, requests_per_s)
            self.series.append(point)
        if self.rollups is not None:  # SQLite, once a minute: on this (the sampler's) thread, never the loop
            try:
                self.rollups.on_point(point)
            except Exception:
                log.exception("telemetry rollup failed")
        return point

    def _point(self, now: float, system: SystemSnapshot, tokens_per_s: float, requests_per_s: float) -> SeriesPoint:
        latency = self.perf.stats("request.latency")
        ttft = self.perf.stats("request.ttft")
        hits = sum(self.perf.event_count(f"cache.{level}") for level in ("hit", "disk", "semantic"))  # any level
        misses = self.perf.event_count("cache.miss")
        gauges = self.perf.gauges()
        stalls = self.responsiveness.take_second(now)
        ui, loop = stalls["ui"], stalls["loop"]
        gpus = system.gpus
        util = [g.utilization_pct for g in gpus if g.utilization_pct is not None]
        used = [g.memory_used_bytes for g in gpus if g.memory_used_bytes is not None]
        total = [g.memory_total_bytes for g in gpus if g.memory_total_bytes is not None]
        return SeriesPoint(
            timestamp=now,
            latency_p50_ms=latency["p50_ms"],
            latency_p95_ms=latency["p95_ms"],
            latency_p99_ms=latency["p99_ms"],
            ttft_p50_ms=ttft["p50_ms"],
            ttft_p95_ms=ttft["p95_ms"],
            tokens_per_s=tokens_per_s,
            requests_per_s=requests_per_s,
            cache_hit_rate=hits / (hits + misses) if hits + misses else None,
            queue_depth=int(gauges.get("queue_depth", 0)),
            active_slots=int(gauges.get("active_slots", 0)),
            cpu_percent=system.cpu_percent,
            ram_percent=system.ram_percent,
            process_rss_bytes=system.process_rss_bytes,
            gpu_util_pct=sum(util) / len(util) if util else None,
            gpu_mem_used_bytes=sum(used) if used else None,
            gpu_mem_total_bytes=sum(total) if total else None,
            loaded_models=int(self._loaded_models()),
            ui_stall_max_ms=ui[0] if ui else None,
            ui_stall_p99_ms=ui[1] if ui else None,
            loop_stall_max_ms=loop[0] if loop else None,
            loop_stall_p99_ms=loop[1] if loop else None,
        )

    async def run(self, interval: float = 1.0) -> None:
        """Tick every `interval` seconds until cancelled. Sampling runs on a thread of its own:
        the loop never blocks, and shutdown never waits behind a busy default executor."""
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jarvis-telemetry")
        try:
            while True:
                started = loop.time()
                await loop.run_in_executor(executor, self.tick)
                await asyncio.sleep(max(0.0, interval - (loop.time() - started)))
        finally:
            # NVML shuts down on this thread too (after a tick in progress), never on the loop.
            try:
                await asyncio.shield(loop.run_in_executor(executor, self.sampler.gpu.close))
            finally:
                executor.shutdown(wait=False, cancel_futures=True)

    def history(self, seconds: float | None = None) -> list[dict]:
        return [asdict(p) for p in self.series.points(seconds)]

    def latest(self) -> SeriesPoint | None:
        return self.series.latest()

    def latest_system(self) -> SystemSnapshot | None:
        """The system snapshot of the last tick (the UI and /api/system/metrics read this)."""
        return self._system

    def close(self) -> None:
        """Shut NVML down if `run` did not (it does, on its thread). Blocking: not on the loop."""
        self.sampler.gpu.close()
