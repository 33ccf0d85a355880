"""The one choke point for NVML: every call JARVIS makes to the NVIDIA driver goes through here.

Without a driver (or with a broken one) every answer is "not available" (`[]`, None, 0), never an
exception: the monitor shows "no GPU" instead of a traceback. The shared library is probed before
pynvml is imported (glances' habit), so a machine without it never pays for the import.

NVML calls block (milliseconds, far more on a wedged driver), so they run on threads only: the
system sampler's, the model manager's loader. One made on a running asyncio loop warns
(RuntimeWarning, an error under the test suite) so a regression is caught where it happens.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, TypeVar

log = logging.getLogger("jarvis.telemetry.gpu")
T = TypeVar("T")
NVML_LIBRARY = "libnvidia-ml.so.1"


@dataclass(frozen=True)
class GpuDevice:
    """One GPU at one moment. A field NVML could not read is None (process memory: 0)."""

    index: int
    name: str
    utilization_pct: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    temperature_c: float | None
    process_memory_bytes: int


@dataclass(frozen=True)
class GpuDriver:
    """The NVIDIA driver, as NVML reports it."""

    version: str  # "550.54.15"
    cuda_version: str | None  # the newest CUDA this driver runs ("12.4"); None when NVML cannot say


def nvml_library_present() -> bool:
    """Whether the driver's NVML library loads. dlopen is tried first: where it fails on Linux,
    so would pynvml's own load of the same name. ctypes.util.find_library runs `ldconfig -p` (and
    gcc) in a child process, ~15 ms a call, which `jarvis serve` paid at every start on a machine
    without NVIDIA while the model loaded; it is asked only off Linux, where the names differ."""
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return not sys.platform.startswith("linux") and bool(ctypes.util.find_library("nvidia-ml"))
    return True


def _load_pynvml() -> tuple[ModuleType | None, str]:
    """pynvml, or None and why not."""
    if not nvml_library_present():
        return None, f"{NVML_LIBRARY} was not found: no NVIDIA driver is installed"
    try:
        import pynvml
    except ImportError as e:
        return None, f"pynvml cannot be imported ({e})"
    return pynvml, ""


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)  # older pynvml: bytes


def _warn_if_on_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    warnings.warn("NVML called on the asyncio event loop, which it can stall: call GpuProbe from a thread "
                  "(an executor) instead.", RuntimeWarning, stacklevel=3)


def _call(fn: Callable[..., T], *args: Any, default: Any = None) -> T | Any:
    """Every NVML call: an NVMLError (or anything else) becomes the not-available default."""
    try:
        return fn(*args)
    except Exception:
        return default


class GpuProbe:
    """Reads NVIDIA GPUs through NVML. Pass `nvml` (a pynvml-like object) to fake the driver."""

    def __init__(self, nvml: Any | None = None) -> None:
        self._lock = threading.Lock()
        self._nvml = nvml
        self._inject = nvml is not None
        self._initialised = False
        self._tried = False
        self._problem = ""

    @property
    def available(self) -> bool:
        return self._ensure_init()

    @property
    def problem(self) -> str:
        """Why NVML is not available ("" when it is, or before the first question)."""
        self._ensure_init()
        return self._problem

    def _ensure_init(self) -> bool:
        with self._lock:
            if not self._tried:
                _warn_if_on_loop()
                self._tried = True
                if not self._inject:
                    self._nvml, self._problem = _load_pynvml()
                if self._nvml is not None:
                    try:
                        self._nvml.nvmlInit()
                        self._initialised = True
                        self._problem = ""
                    except Exception as e:
                        self._problem = f"NVML did not start: {e or type(e).__name__}"
                        log.info("NVML is present but did not start (%s): no GPU statistics.", e)
            return self._initialised

    def driver(self) -> GpuDriver | None:
        """The driver's version and the newest CUDA it runs; None without NVML."""
        if not self._ensure_init():
            return None
        _warn_if_on_loop()
        version = _call(self._nvml.nvmlSystemGetDriverVersion)
        if version is None:
            return None
        cuda = _call(self._nvml.nvmlSystemGetCudaDriverVersion)  # 12040 for CUDA 12.4
        return GpuDriver(_text(version), f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None)

    def snapshot(self) -> list[GpuDevice]:
        if not self._ensure_init():
            return []
        _warn_if_on_loop()
        nvml = self._nvml
        count = _call(nvml.nvmlDeviceGetCount, default=0)
        devices = []
        for index in range(count):
            handle = _call(nvml.nvmlDeviceGetHandleByIndex, index)
            if handle is None:
                continue
            devices.append(self._read_device(nvml, index, handle))
        return devices

    def _read_device(self, nvml: Any, index: int, handle: Any) -> GpuDevice:
        name = _call(nvml.nvmlDeviceGetName, handle, default="GPU")
        util = _call(nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = _call(nvml.nvmlDeviceGetMemoryInfo, handle)
        sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
        temperature = _call(nvml.nvmlDeviceGetTemperature, handle, sensor)
        return GpuDevice(
            index=index,
            name=_text(name),
            utilization_pct=_call(lambda: float(util.gpu)) if util is not None else None,
            memory_used_bytes=_call(lambda: int(memory.used)) if memory is not None else None,
            memory_total_bytes=_call(lambda: int(memory.total)) if memory is not None else None,
            temperature_c=float(temperature) if isinstance(temperature, (int, float)) else None,
            process_memory_bytes=self._process_memory(nvml, handle),
        )

    @staticmethod
    def _process_memory(nvml: Any, handle: Any) -> int:
        processes = _call(nvml.nvmlDeviceGetComputeRunningProcesses, handle, default=[]) or []
        pid = os.getpid()
        # usedGpuMemory is None when the driver cannot say (e.g. some containers / WDDM).
        return sum(int(getattr(p, "usedGpuMemory", 0) or 0) for p in processes if getattr(p, "pid", None) == pid)

    def close(self) -> None:
        with self._lock:
            if self._initialised:
                _warn_if_on_loop()
                _call(self._nvml.nvmlShutdown)
                self._initialised = False
            self._tried = False
