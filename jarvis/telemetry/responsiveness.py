"""Responsiveness: how late a thread's heartbeat runs is how long that thread was stalled.

A heartbeat asks to run every `interval_ms`. When the thread is busy (a paint, a relayout, a long
callback), the next beat runs late; the gap between two beats minus the interval is the stall.
A block of B ms between two beats therefore reads as at least B - interval_ms.

- `HeartbeatMeter` turns beats into stalls and emits a `StallRecord` a few times a second. It
  knows no timer: the desktop beats it from a QTimer on the Qt thread (ui/heartbeat.py), and
  `loop_heartbeat` beats one from the asyncio loop. The core never imports Qt.
- `Responsiveness` folds StallRecords (subscribe it to the RecordBus): per source, the stalls
  since the hub's last tick (that second's max and P99 go into the 1 Hz history), and a window of
  per-second figures for the stats JSON.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Callable

from jarvis.telemetry.records import StallRecord
from jarvis.telemetry.window import percentile

FRAME_MS = 16.0  # one frame at 60 Hz: the goal for the worst UI stall


class HeartbeatMeter:
    """Beats in, StallRecords out (through `emit`, every `flush_s`). Used from one thread."""

    def __init__(self, source: str, interval_ms: float, emit: Callable[[StallRecord], None], *,
                 flush_s: float = 0.25, clock: Callable[[], float] = time.perf_counter) -> None:
        self.source = source
        self.interval_ms = float(interval_ms)
        self._emit = emit
        self._flush_s = flush_s
        self._clock = clock
        self._last: float | None = None
        self._last_flush = 0.0
        self._pending: list[float] = []
        self.beats = 0
        self.max_ms = 0.0  # the worst stall since the meter started (or was reset)

    def beat(self) -> float:
        """One heartbeat ran now; returns its stall in ms (0 for the first beat)."""
        now = self._clock()
        stall = 0.0
        if self._last is None:
            self._last_flush = now
        else:
            stall = max(0.0, (now - self._last) * 1000.0 - self.interval_ms)
            self._pending.append(stall)
            self.max_ms = max(self.max_ms, stall)
        self._last = now
        self.beats += 1
        if now - self._last_flush >= self._flush_s:
            self.flush()
        return stall

    def flush(self) -> None:
        self._last_flush = self._clock()
        if self._pending:
            stalls, self._pending = tuple(self._pending), []
            self._emit(StallRecord(self.source, self.interval_ms, stalls))

    def pause(self) -> None:
        """The timer stops (on purpose): the next beat starts afresh instead of reading a stall."""
        self.flush()
        self._last = None


class Watch:
    """Whether anyone reads the telemetry: `seen()` at every read (the stats routes, /metrics);
    watched while the last read is at most `idle_s` old. Loop-side only."""

    def __init__(self, idle_s: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._last: float | None = None
        self._seen = asyncio.Event()

    def seen(self) -> None:
        self._last = self._clock()
        self._seen.set()

    @property
    def watched(self) -> bool:
        return self._last is not None and self._clock() - self._last <= self.idle_s

    async def wait(self) -> None:
        """Until the next read."""
        self._seen.clear()
        await self._seen.wait()


async def loop_heartbeat(meter: HeartbeatMeter, watch: Watch | None = None) -> None:
    """Beat `meter` from the running asyncio loop until cancelled. With a `watch`, only while
    someone reads the figures: a headless server nobody watches would otherwise wake its loop
    125 times a second (8 ms), taking a core from llama.cpp's workers for figures nobody reads."""
    interval = meter.interval_ms / 1000.0
    try:
        while True:
            if watch is not None and not watch.watched:
                meter.pause()  # the gap is not a stall: the next beat starts afresh
                await watch.wait()
            meter.beat()
            await asyncio.sleep(interval)
    finally:
        meter.pause()


class Responsiveness:
    """Folds StallRecords; thread-safe (records arrive on whichever thread beat)."""

    def __init__(self, window_s: float = 300.0) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._pending: dict[str, list[float]] = {}
        self._interval: dict[str, float] = {}
        self._beats: dict[str, int] = {}
        self._over_frame: dict[str, int] = {}
        self._max: dict[str, float] = {}
        self._seconds: dict[str, deque[tuple[float, float, float]]] = {}  # (t, max, p99) per tick
        self._last: dict[str, tuple[float, float] | None] = {}

    def observe(self, record: object) -> None:
        if not isinstance(record, StallRecord) or not record.stalls_ms:
            return
        with self._lock:
            s = record.source
            self._pending.setdefault(s, []).extend(record.stalls_ms)
            self._interval[s] = record.interval_ms
            self._beats[s] = self._beats.get(s, 0) + len(record.stalls_ms)
            self._over_frame[s] = self._over_frame.get(s, 0) + sum(1 for v in record.stalls_ms if v > FRAME_MS)
            self._max[s] = max(self._max.get(s, 0.0), max(record.stalls_ms))

    def take_second(self, now: float) -> dict[str, tuple[float, float] | None]:
        """(max, P99) of each source's stalls since the previous call; None for a source that sent
        nothing in that time (its heartbeat is not running). Called by the hub's 1 Hz tick."""
        with self._lock:
            out: dict[str, tuple[float, float] | None] = {}
            for source in ("ui", "loop"):
                values = sorted(self._pending.pop(source, ()))
                if not values:
                    out[source] = None
                    continue
                figures = (values[-1], percentile(values, 99))
                out[source] = figures
                ring = self._seconds.setdefault(source, deque())
                ring.append((now, *figures))
                while ring and ring[0][0] < now - self.window_s:
                    ring.popleft()
            self._last = out
            return out

    def summary(self) -> dict[str, dict]:
        """Per source that ever beat: the last second's max and P99, the window's worst second,
        how many beats were counted and how many stalled longer than a frame (16 ms)."""
        with self._lock:
            out = {}
            for source, beats in self._beats.items():
                last = self._last.get(source)
                ring = self._seconds.get(source, ())
                out[source] = {
                    "interval_ms": self._interval[source],
                    "beats": beats,
                    "stalls_over_frame": self._over_frame.get(source, 0),
                    "last_second_max_ms": round(last[0], 3) if last else None,
                    "last_second_p99_ms": round(last[1], 3) if last else None,
                    "window_s": self.window_s,
                    "window_max_ms": round(max(m for _, m, _ in ring), 3) if ring else None,
                    "window_p99_of_seconds_ms": round(percentile(sorted(p for _, _, p in ring), 99), 3)
                    if ring else None,
                    "lifetime_max_ms": round(self._max.get(source, 0.0), 3),
                }
            return out
