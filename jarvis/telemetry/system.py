"""SystemSampler: CPU, RAM and GPU of the machine and of this process, as one frozen snapshot.

`sample()` never sleeps: psutil's cpu_percent(interval=None) measures since the previous call,
so calling it once per tick gives the average over the tick. Call it from a thread or an executor
(NVML calls may take milliseconds), never on the asyncio loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil

from jarvis.telemetry.gpu import GpuDevice, GpuProbe


@dataclass(frozen=True)
class SystemSnapshot:
    timestamp: float
    cpu_percent: float  # whole machine, 0..100
    process_cpu_percent: float  # this process, as a share of the whole machine, 0..100
    ram_percent: float
    ram_used_bytes: int
    ram_total_bytes: int
    process_rss_bytes: int
    gpu_available: bool
    gpus: tuple[GpuDevice, ...] = field(default_factory=tuple)


class SystemSampler:
    def __init__(self, gpu: GpuProbe | None = None, process: psutil.Process | None = None) -> None:
        self.gpu = gpu if gpu is not None else GpuProbe()
        self._process = process if process is not None else psutil.Process()
        self._cpu_count = psutil.cpu_count() or 1
        # The first interval=None call only sets the baseline; prime it so sample() is meaningful.
        psutil.cpu_percent(interval=None)
        self._process.cpu_percent(interval=None)

    def sample(self) -> SystemSnapshot:
        memory = psutil.virtual_memory()
        # Process.cpu_percent counts one full core as 100; divide so 100 means the whole machine.
        process_cpu = self._process.cpu_percent(interval=None) / self._cpu_count
        gpus = tuple(self.gpu.snapshot())
        return SystemSnapshot(
            timestamp=time.time(),
            cpu_percent=psutil.cpu_percent(interval=None),
            process_cpu_percent=min(process_cpu, 100.0),
            ram_percent=memory.percent,
            ram_used_bytes=memory.total - memory.available,
            ram_total_bytes=memory.total,
            process_rss_bytes=self._process.memory_info().rss,
            gpu_available=self.gpu.available,
            gpus=gpus,
        )
