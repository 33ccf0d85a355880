"""A pynvml stand-in: this machine has no NVIDIA driver (DESIGN: fake only what it lacks)."""

import os
from types import SimpleNamespace

import pynvml

GIB = 1024**3


class FakeNvml:
    """The pynvml calls GpuProbe makes, for two devices; device 1 cannot read its temperature."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.shutdowns = 0

    def nvmlInit(self):
        if self.fail_init:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return b"550.54.15"  # older pynvml returns bytes

    def nvmlSystemGetCudaDriverVersion(self):
        return 12040  # CUDA 12.4

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return f"handle{i}"

    def nvmlDeviceGetName(self, h):
        return {"handle0": "NVIDIA H100", "handle1": b"NVIDIA A10"}[h]

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=37 if h == "handle0" else 5, memory=10)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=3 * GIB, total=80 * GIB, free=77 * GIB)

    def nvmlDeviceGetTemperature(self, h, sensor):
        if h == "handle1":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 61

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        if h == "handle1":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)
        return [SimpleNamespace(pid=os.getpid(), usedGpuMemory=GIB),
                SimpleNamespace(pid=os.getpid() + 1, usedGpuMemory=2 * GIB),
                SimpleNamespace(pid=os.getpid(), usedGpuMemory=None)]
