import asyncio
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.telemetry import ModelRecord, PerfMonitor, QueueRecord, RecordBus, RequestRecord, StepRecord
from jarvis.telemetry.window import SlidingWindow, percentile


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_of_1_to_1000_in_any_order():
    perf = PerfMonitor()
    values = list(range(1, 1001))
    random.Random(7).shuffle(values)
    for v in values:
        perf.record("x", v)
    s = perf.stats("x")
    assert s["count"] == s["lifetime_count"] == 1000
    assert s["min_ms"] == 1 and s["max_ms"] == 1000
    assert s["avg_ms"] == pytest.approx(500.5)
    # numpy's default (linear) percentile of 1..1000
    assert s["p50_ms"] == pytest.approx(500.5)
    assert s["p95_ms"] == pytest.approx(950.05)
    assert s["p99_ms"] == pytest.approx(990.01)
    assert s["success_rate"] == pytest.approx(1.0)  # approx: a ratio of counts, computed in float


def test_empty_series_has_no_numbers():
    s = PerfMonitor().stats("never")
    assert s["count"] == 0 and s["p50_ms"] is None and s["success_rate"] is None


def test_window_forgets_old_samples():
    clock = FakeClock()
    perf = PerfMonitor(window_s=10, clock=clock)
    for _ in range(5):
        perf.record("x", 1000.0, ok=False)
    clock.now += 6
    for _ in range(5):
        perf.record("x", 1.0)
    assert perf.stats("x")["count"] == 10
    assert perf.stats("x")["success_rate"] == pytest.approx(0.5)  # approx: a ratio of counts, in float
    clock.now += 5  # the first five are now 11 s old
    s = perf.stats("x")
    assert s["count"] == 5 and s["max_ms"] == 1.0 and s["success_rate"] == pytest.approx(1.0)
    assert s["lifetime_count"] == 10
    clock.now += 100
    assert perf.stats("x")["count"] == 0


def test_memory_is_bounded_inside_the_window():
    perf = PerfMonitor(max_samples=100)
    for v in range(1000):
        perf.record("x", v)
    s = perf.stats("x")
    assert s["count"] == 100 and s["min_ms"] == 900
    assert s["lifetime_count"] == 1000


def test_events_count_over_a_window():
    clock = FakeClock()
    perf = PerfMonitor(window_s=60, clock=clock)
    perf.event("tok", 10)
    clock.now += 30
    perf.event("tok", 5)
    assert perf.event_count("tok") == 15
    assert perf.event_count("tok", seconds=10) == 5
    clock.now += 40
    assert perf.event_count("tok") == 5


def test_eight_threads_lose_no_counts():
    perf = PerfMonitor(max_samples=100_000)
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for i in range(10_000):
            perf.record("t", float(i))
            perf.incr("c")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert perf.counters()["c"] == 80_000
    assert perf.stats("t")["lifetime_count"] == 80_000
    assert perf.stats("t")["count"] == 80_000


def test_measure_sync_async_and_context_manager():
    perf = PerfMonitor()

    @perf.measure("sync")
    def add(a, b):
        return a + b

    @perf.measure("async")
    async def mul(a, b):
        await asyncio.sleep(0)
        return a * b

    @perf.measure("fails")
    def boom():
        raise ValueError("no")

    assert add(2, 3) == 5
    assert asyncio.run(mul(2, 3)) == 6
    with pytest.raises(ValueError):
        boom()
    with perf.measure("block"):
        pass
    assert perf.stats("sync")["count"] == 1 and perf.stats("sync")["min_ms"] >= 0
    assert perf.stats("async")["count"] == 1
    assert perf.stats("fails")["success_rate"] == pytest.approx(0.0)  # approx: a ratio of counts, in float
    assert perf.stats("block")["count"] == 1
    assert add.__name__ == "add" and asyncio.iscoroutinefunction(mul)


def test_observe_turns_records_into_metrics():
    perf = PerfMonitor()
    bus = RecordBus()
    bus.subscribe(perf.observe)
    bus.emit(ModelRecord(model="m", event="loaded", load_ms=250))
    bus.emit(RequestRecord(request_id="1", model="m", total_ms=100, queue_ms=10, ttft_ms=30, prefill_ms=20,
                           model_load_ms=250, decode_tokens_per_s=80, prompt_tokens=12, completion_tokens=40,
                           warm_start=False, cache="miss"))
    bus.emit(RequestRecord(request_id="2", model="m", total_ms=2, cache="hit", completion_tokens=40))
    bus.emit(RequestRecord(request_id="3", model="m", status="error", error_kind="ContextOverflow",
                           total_ms=5, queue_ms=30, cache="miss"))
    bus.emit(StepRecord(model="m", active_slots=3, queue_depth=5, batch_tokens=3, decode_tokens=3,
                        prefill_tokens=0, step_ms=12))
    bus.emit(StepRecord(model="m", active_slots=1, queue_depth=0, batch_tokens=1, decode_tokens=1,
                        prefill_tokens=0, step_ms=12))
    bus.emit(QueueRecord(model="m", event="rejected", queue_depth=64))
    bus.emit(QueueRecord(model="m", event="timeout", queue_depth=2))

    c = perf.counters()
    assert c["requests.total"] == 3 and c["requests.ok"] == 2 and c["requests.error"] == 1
    assert c["cache.hits"] == 1 and c["cache.misses"] == 2
    assert c["starts.cold"] == 1 and c["starts.warm"] == 1
    assert c["tokens.prompt"] == 12 and c["tokens.completion"] == 40  # the cache hit generated nothing
    assert c["errors.ContextOverflow"] == 1 and c["models.loaded"] == 1
    assert perf.stats("request.latency")["success_rate"] == pytest.approx(2 / 3)
    assert perf.stats("request.ttft")["count"] == 1
    assert perf.stats("request.model_load")["max_ms"] == 250
    assert perf.stats("model.load")["count"] == 1
    rate = perf.stats("request.decode_tokens_per_s")
    assert rate["avg_tokens_per_s"] == 80 and "avg_ms" not in rate  # a rate is never published as a time
    q = perf.queue_stats()
    assert q == {"current_depth": 0, "max_depth": 64, "avg_wait_ms": 20.0, "max_wait_ms": 30.0,
                 "rejections": 1, "timeouts": 1, "active_slots": 1, "max_concurrent": 3}
    assert perf.loaded_models() == ["m"]
    bus.emit(ModelRecord(model="m", event="unloaded"))
    assert perf.loaded_models() == [] and perf.gauges()["loaded_models"] == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.floats(0, 1e6, allow_nan=False), st.booleans()),
                max_size=300),
       st.integers(1, 50))
def test_window_matches_a_fresh_sort(samples, max_samples):
    """The incrementally sorted window equals sorting what it should still hold."""
    window = SlidingWindow(window_s=20.0, max_samples=max_samples)
    t, kept = 0.0, []
    for dt, value, ok in samples:
        t += dt
        window.add(t, value, ok)
        window.prune(t)
        kept = [s for s in (kept + [(t, value, ok)])[-max_samples:] if s[0] >= t - 20.0]
    s = window.summary()
    values = sorted(v for _, v, _ in kept)
    assert s["count"] == len(values) and s["lifetime_count"] == len(samples)
    if values:
        assert s["p50_ms"] == percentile(values, 50) and s["p99_ms"] == percentile(values, 99)
        assert (s["min_ms"], s["max_ms"]) == (values[0], values[-1])
        assert s["avg_ms"] == pytest.approx(sum(values) / len(values), rel=1e-9, abs=1e-6)
        assert s["success_rate"] == sum(ok for *_, ok in kept) / len(kept)


def test_cache_hits_count_as_hits_not_as_generated_tokens():
    from jarvis.telemetry import RequestRecord

    perf = PerfMonitor()
    perf.observe(RequestRecord("r1", "m", prompt_tokens=10, completion_tokens=20, cache="miss"))
    perf.observe(RequestRecord("r2", "m", prompt_tokens=10, completion_tokens=20, cache="hit"))
    c = perf.counters()
    assert c["tokens.completion"] == 20 and c["tokens.prompt"] == 10
    assert c["cache.hits"] == 1 and c["requests.total"] == 2


def test_a_request_that_never_looked_the_cache_up_is_neither_hit_nor_miss():
    from jarvis.telemetry import RequestRecord

    perf = PerfMonitor()
    perf.observe(RequestRecord("r1", "m", cache="off"))  # random sampling, or the cache turned off
    c = perf.counters()
    assert c["requests.total"] == 1 and "cache.hits" not in c and "cache.misses" not in c
