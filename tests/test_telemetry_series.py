import asyncio
import threading

import pytest

from jarvis.telemetry import ModelRecord, PerfMonitor, RequestRecord, StepRecord, TelemetryHub
from jarvis.telemetry.gpu import GpuProbe
from jarvis.telemetry.system import SystemSampler
from tests.fake_nvml import GIB, FakeNvml
from tests.support.until import until_async


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def make_hub(clock, **kwargs) -> TelemetryHub:
    return TelemetryHub(perf=PerfMonitor(clock=clock), sampler=SystemSampler(gpu=GpuProbe(nvml=FakeNvml())),
                        clock=clock, **kwargs)


def test_tick_summarises_one_second():
    clock = FakeClock()
    hub = make_hub(clock)
    first = hub.tick()
    assert first.tokens_per_s == pytest.approx(0.0) and first.latency_p50_ms is None and first.cache_hit_rate is None
    for i in range(4):
        hub.perf.observe(RequestRecord(request_id=str(i), model="m", total_ms=100.0 * (i + 1), ttft_ms=10,
                                       completion_tokens=50, cache="hit" if i == 0 else "miss"))
    hub.perf.observe(StepRecord(model="m", active_slots=2, queue_depth=3, batch_tokens=2, decode_tokens=2,
                                prefill_tokens=0, step_ms=5))
    hub.perf.observe(ModelRecord(model="m", event="loaded"))
    clock.now += 2.0
    p = hub.tick()
    assert p.tokens_per_s == pytest.approx(75.0)  # 150 generated tokens in 2 s (the cache hit generated none)
    assert p.requests_per_s == pytest.approx(2.0)
    assert p.latency_p50_ms == pytest.approx(250.0) and p.ttft_p95_ms == pytest.approx(10.0)
    assert p.cache_hit_rate == pytest.approx(0.25)
    assert (p.queue_depth, p.active_slots, p.loaded_models) == (3, 2, 1)
    assert p.gpu_util_pct == pytest.approx(21.0)  # mean of 37 and 5
    assert p.gpu_mem_used_bytes == 6 * GIB and p.gpu_mem_total_bytes == 160 * GIB
    assert p.process_rss_bytes > 0 and 0 <= p.cpu_percent <= 100
    assert hub.latest() == p and hub.latest_system().gpu_available


def test_history_is_bounded_and_filtered_by_age():
    clock = FakeClock()
    hub = make_hub(clock, history_s=10, loaded_models=lambda: 7)
    for _ in range(25):
        hub.tick()
        clock.now += 1.0
    points = hub.history()
    assert len(points) == 10 and points[-1]["loaded_models"] == 7
    assert [p["timestamp"] for p in hub.history(seconds=3)] == [5022.0, 5023.0, 5024.0]


def test_no_gpu_gives_none_in_the_series():
    hub = TelemetryHub(sampler=SystemSampler(gpu=GpuProbe(nvml=FakeNvml(fail_init=True))))
    p = hub.tick()
    assert p.gpu_util_pct is None and p.gpu_mem_used_bytes is None and p.gpu_mem_total_bytes is None


def test_run_samples_off_the_loop_until_cancelled():
    hub = TelemetryHub(sampler=SystemSampler(gpu=GpuProbe(nvml=FakeNvml())))
    sample = hub.sampler.sample
    threads = set()

    def recording_sample():
        threads.add(threading.current_thread().name)
        return sample()

    hub.sampler.sample = recording_sample

    async def main():
        task = asyncio.create_task(hub.run(interval=0.01))
        await until_async(lambda: len(hub.history()) >= 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(threads) == 1 and next(iter(threads)).startswith("jarvis-telemetry")
