"""Every NVML call runs off the event loop: the manager's memory budget (free GPU memory) is read in
its loader thread, and NVML shuts down on the sampler's and the loader's threads. NVML is faked
(this machine has no NVIDIA driver); the fake records the thread of every call."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jarvis.catalog import Catalog
from jarvis.engine import EngineConfig
from jarvis.manager import ModelManager
from jarvis.telemetry import GpuProbe, PerfMonitor, RecordBus, SystemSampler, TelemetryHub
from tests.fake_nvml import FakeNvml
from tests.support.until import until_async


class ThreadRecordingNvml(FakeNvml):
    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def __getattribute__(self, name: str):
        attr = super().__getattribute__(name)
        if name.startswith("nvml") and callable(attr):
            super().__getattribute__("threads").append(threading.current_thread().name)
        return attr


def test_the_memory_budget_reads_nvml_in_the_loader_thread(tmp_path, model_copy):
    for name in ("a", "b"):
        model_copy(name)
    nvml = ThreadRecordingNvml()
    catalog = Catalog([tmp_path / "models"], include_bundled=False)
    catalog.rescan()
    config = EngineConfig(gpu_layers=-1, context_length=256, batch_size=1)  # offload asked: the budget asks NVML

    async def body():
        manager = ModelManager(catalog, config, RecordBus(), max_loaded=2, gpu=GpuProbe(nvml=nvml))
        try:
            await manager.load("a")
            await manager.load("b")  # a is loaded: does b fit? free GPU memory decides
            return threading.current_thread().name
        finally:
            await manager.close()

    loop_thread = asyncio.run(body())
    assert "nvmlDeviceGetMemoryInfo" in dir(nvml) and nvml.threads, "the budget never asked NVML"
    assert loop_thread not in nvml.threads and all(t.startswith("jarvis-loader") for t in nvml.threads)
    assert nvml.shutdowns == 1


def test_the_sampler_shuts_nvml_down_on_its_own_thread():
    nvml = ThreadRecordingNvml()
    hub = TelemetryHub(perf=PerfMonitor(), sampler=SystemSampler(gpu=GpuProbe(nvml=nvml)))

    async def body():
        task = asyncio.get_running_loop().create_task(hub.run(interval=0.01))
        await until_async(lambda: len(hub.series.points()) >= 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        hub.close()  # nothing left to shut down: no NVML call on the loop
        return threading.current_thread().name

    loop_thread = asyncio.run(body())
    assert nvml.threads and loop_thread not in nvml.threads and nvml.shutdowns == 1


def test_nvml_on_the_loop_warns(recwarn):
    """The choke point itself says so when someone calls it on a running loop (an error here,
    where pytest turns warnings into errors)."""
    async def on_the_loop():
        GpuProbe(nvml=FakeNvml()).snapshot()

    with pytest.warns(RuntimeWarning, match="NVML called on the asyncio event loop"):
        asyncio.run(on_the_loop())
