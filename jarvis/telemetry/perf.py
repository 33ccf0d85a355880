"""PerfMonitor: sliding-window timings with exact percentiles, counters, gauges and events.

Thread-safe: records arrive from engine worker threads (through RecordBus), reads come from the
asyncio loop and the UI. Every operation under the one lock is short (a bisect, a memmove, a few
reads of a list kept sorted), so neither side holds up the other for long.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections import Counter, deque
from typing import Any, Callable

from jarvis.telemetry.fold import RAN, facts
from jarvis.telemetry.records import ModelRecord, QueueRecord, RequestRecord, StepRecord
from jarvis.telemetry.window import SlidingWindow

Clock = Callable[[], float]


class _Measure:
    """What `PerfMonitor.measure(name)` returns: a context manager and a decorator."""

    def __init__(self, monitor: "PerfMonitor", name: str) -> None:
        self._monitor = monitor
        self._name = name
        self._start = 0.0

    def __enter__(self) -> "_Measure":
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        elapsed_ms = (time.perf_counter() - self._start) * 1000.0
        self._monitor.record(self._name, elapsed_ms, ok=exc_type is None)

    def __call__(self, fn: Callable) -> Callable:
        # Each call gets its own _Measure: one shared start time would race between threads.
        monitor, name = self._monitor, self._name
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                with _Measure(monitor, name):
                    return await fn(*args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _Measure(monitor, name):
                return fn(*args, **kwargs)

        return wrapper


class PerfMonitor:
    """Named timing series over a sliding window, plus counters, gauges and timestamped events.

    Memory is bounded twice: samples older than `window_s` are pruned, and each series keeps at
    most `max_samples`, so a flood inside the window forgets its oldest samples.
    """

    def __init__(self, window_s: float = 300.0, max_samples: int = 50_000, clock: Clock = time.monotonic) -> None:
        self.window_s = float(window_s)
        self._max_samples = max_samples
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, SlidingWindow] = {}
        self._events: dict[str, deque[tuple[float, int]]] = {}  # name -> (t, n)
        self._counters: Counter[str] = Counter()
        self._gauges: dict[str, float] = {}
        # Engine state per model, summed into the gauges.
        self._active_slots: dict[str, int] = {}
        self._queue_depth: dict[str, int] = {}
        self._loaded_models: set[str] = set()
        self._tool_servers: set[str] = set()  # MCP servers seen in records (calls or schema tokens)

    # ---- writing -------------------------------------------------------------------------
    def record(self, name: str, value: float, ok: bool = True, unit: str = "ms") -> None:
        """One sample of a series; `unit` (set by its first sample) names its stats' keys."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(name)
            if window is None:
                window = self._windows[name] = SlidingWindow(self.window_s, self._max_samples, unit)
            window.add(now, float(value), ok)
            window.prune(now)

    def measure(self, name: str) -> _Measure:
        """`with monitor.measure("x"):` or `@monitor.measure("x")` on a sync or async function."""
        return _Measure(self, name)

    def event(self, name: str, n: int = 1) -> None:
        """Something happened (n times) now; `event_count` sums them over a window."""
        now = self._clock()
        with self._lock:
            events = self._events.get(name)
            if events is None:
                events = self._events[name] = deque(maxlen=self._max_samples)
            events.append((now, n))
            self._prune(events, now)

    def incr(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self._counters[counter] += n

    def _set_gauge(self, name: str, value: float) -> None:
        self._gauges[name] = value
        peak = f"{name}.max"
        self._gauges[peak] = max(self._gauges.get(peak, value), value)

    def _prune(self, events: deque, now: float) -> None:
        horizon = now - self.window_s
        while events and events[0][0] < horizon:
            events.popleft()

    # ---- reading -------------------------------------------------------------------------
    def stats(self, name: str, unit: str = "ms") -> dict[str, Any]:
        """Window statistics of one series. Percentiles are exact over the window's samples (kept
        sorted as they arrive), not estimated from buckets. Fields are None when the window is empty;
        `unit` names them for a series that has no sample yet."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(name)
            if window is None:
                return SlidingWindow(self.window_s, 1, unit).summary()
            window.prune(now)
            return window.summary()

    def event_count(self, name: str, seconds: float | None = None) -> int:
        """Sum of `event(name, n)` over the last `seconds` (default: the whole window)."""
        now = self._clock()
        horizon = now - (self.window_s if seconds is None else min(seconds, self.window_s))
        with self._lock:
            events = self._events.get(name)
            return sum(n for t, n in events if t >= horizon) if events else 0

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def gauges(self) -> dict[str, float]:
        with self._lock:
            return dict(self._gauges)

    def loaded_models(self) -> list[str]:
        with self._lock:
            return sorted(self._loaded_models)

    def tool_servers(self) -> dict[str, dict[str, Any]]:
        """Per tool server: calls, errors and refused calls (since start), P50/P95 of its calls'
        latency over the window, and the tokens its tools' schemas added to the last prompt with tools."""
        with self._lock:
            servers = sorted(self._tool_servers)
            c, g = self._counters, self._gauges
            counts = {s: (c[f"tools.{s}.calls"], c[f"tools.{s}.errors"], c[f"tools.{s}.refused"],
                          g.get(f"tools.{s}.schema_tokens")) for s in servers}
        out = {}
        for server, (calls, errors, refused, tokens) in counts.items():
            latency = self.stats(f"tools.{server}.latency")
            out[server] = {"calls": calls, "errors": errors, "refused": refused, "p50_ms": latency["p50_ms"],
                           "p95_ms": latency["p95_ms"], "schema_tokens": None if tokens is None else int(tokens)}
        return out

    def queue_stats(self) -> dict[str, Any]:
        wait = self.stats("request.queue")
        with self._lock:
            return {
                "current_depth": int(self._gauges.get("queue_depth", 0)),
                "max_depth": int(self._gauges.get("queue_depth.max", 0)),
                "avg_wait_ms": wait["avg_ms"],
                "max_wait_ms": wait["max_ms"],
                "rejections": self._counters["queue.rejections"],
                "timeouts": self._counters["queue.timeouts"],
                "active_slots": int(self._gauges.get("active_slots", 0)),
                "max_concurrent": int(self._gauges.get("active_slots.max", 0)),
            }

    # ---- records (subscribe `observe` to a RecordBus) ------------------------------------
    def observe(self, record: object) -> None:
        if isinstance(record, RequestRecord):
            self._observe_request(record)
        elif isinstance(record, StepRecord):
            with self._lock:
                self._active_slots[record.model] = record.active_slots
                self._queue_depth[record.model] = record.queue_depth
                self._set_gauge("active_slots", sum(self._active_slots.values()))
                self._set_gauge("queue_depth", sum(self._queue_depth.values()))
        elif isinstance(record, QueueRecord):
            counter = {"rejected": "queue.rejections", "timeout": "queue.timeouts"}.get(record.event)
            with self._lock:
                if counter:
                    self._counters[counter] += 1
                peak = "queue_depth.max"
                self._gauges[peak] = max(self._gauges.get(peak, 0), record.queue_depth)
        elif isinstance(record, ModelRecord):
            with self._lock:
                self._counters[f"models.{record.event}"] += 1
                if record.event == "loaded":
                    self._loaded_models.add(record.model)
                elif record.event == "unloaded":
                    self._loaded_models.discard(record.model)
                    # An unloaded model has no slots or queue any more.
                    self._active_slots.pop(record.model, None)
                    self._queue_depth.pop(record.model, None)
                    self._set_gauge("active_slots", sum(self._active_slots.values()))
                    self._set_gauge("queue_depth", sum(self._queue_depth.values()))
                self._gauges["loaded_models"] = len(self._loaded_models)
            if record.event == "loaded" and record.load_ms > 0:
                self.record("model.load", record.load_ms)

    def _observe_request(self, r: RequestRecord) -> None:
        f = facts(r)  # what the record adds, decided once (jarvis.telemetry.fold)
        self.record("request.latency", f.latency_ms, ok=f.ok)
        if f.ttft_ms is not None:
            self.record("request.ttft", f.ttft_ms)
        if f.queue_ms is not None:
            self.record("request.queue", f.queue_ms, ok=f.ok)
        if f.prefill_ms is not None:
            self.record("request.prefill", f.prefill_ms, ok=f.ok)
        if f.load_ms is not None:
            self.record("request.model_load", f.load_ms, ok=f.ok)
        if f.decode_tokens_per_s is not None:
            self.record("request.decode_tokens_per_s", f.decode_tokens_per_s, unit="tokens_per_s")
        if f.cache is not None:
            self.event(f"cache.{f.cache}")
        # Each backend's own series beside the totals: backend.NAME.latency / .ttft / ... ("local" too).
        prefix = f"backend.{f.backend}"
        self.record(f"{prefix}.latency", f.latency_ms, ok=f.ok)
        if f.ttft_ms is not None:
            self.record(f"{prefix}.ttft", f.ttft_ms)
        if f.decode_tokens_per_s is not None:
            self.record(f"{prefix}.decode_tokens_per_s", f.decode_tokens_per_s, unit="tokens_per_s")
        for call in f.tool_calls:
            if call.status in RAN:
                self.record(f"tools.{call.server}.latency", call.ms, ok=call.status == "done")
        with self._lock:
            c = self._counters
            for call in f.tool_calls:
                self._tool_servers.add(call.server)
                c[f"tools.{call.server}.{'refused' if call.status not in RAN else 'calls'}"] += 1
                if call.status == "error":
                    c[f"tools.{call.server}.errors"] += 1
            if f.tool_schema_tokens is not None:  # the latest prompt with tools: a server not in it adds 0
                self._tool_servers.update(f.tool_schema_tokens)
                for server in self._tool_servers:
                    self._gauges[f"tools.{server}.schema_tokens"] = f.tool_schema_tokens.get(server, 0)
            c["requests.total"] += 1
            c[f"requests.{f.status}"] += 1
            if f.cache is not None:
                c["cache.hits" if f.cache == "hit" else "cache.misses"] += 1
            if f.warm_start is not None:
                c["starts.warm" if f.warm_start else "starts.cold"] += 1
            c["tokens.prompt"] += f.prompt_tokens
            c["tokens.completion"] += f.completion_tokens
            if f.error_kind:
                c[f"errors.{f.error_kind}"] += 1
            c[f"requests.backend.{f.backend}"] += 1
