"""Which of the machine's CPUs are worth a llama.cpp compute thread: one per physical core this
process may use, performance cores only on a hybrid CPU. That is llama.cpp's own default thread
count (common_cpu_get_num_math, which llama-server, Ollama and LM Studio follow): a decode is
matrix arithmetic in lockstep, so an SMT sibling shares its core's vector units and adds little,
and an efficiency core is the slow thread that every barrier of the step waits for. A process
limited to some cores (a taskset, a container's cpuset) counts only those, which llama.cpp does
not. Light on imports: the early model open (opening.py) counts its threads before the engine
is imported.
"""

from __future__ import annotations

import os
import sys

SYSFS = "/sys/devices"


def usable_cpus() -> list[int]:
    """The logical CPUs this thread may run on: a taskset or a container's cpuset can allow fewer
    than the machine has (os.cpu_count), and more threads than CPUs only take turns on them. Empty
    where the platform cannot say."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def parse_cpu_list(text: str) -> set[int]:
    """The kernel's CPU list format: "0-3,8,10-11"."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (OSError, ValueError):
        return None


def compute_cpus(cpus: list[int], sysfs: str = SYSFS) -> list[int]:
    """Of `cpus` (logical CPUs), the first of each physical core, leaving out a hybrid CPU's
    efficiency cores (the kernel lists the performance ones in cpu_core/cpus). Linux's sysfs;
    `cpus` as they are where it cannot say (then every logical CPU counts, as before)."""
    performance = _read(f"{sysfs}/cpu_core/cpus")  # present only on a hybrid Intel CPU
    if performance is not None:
        big = parse_cpu_list(performance)
        cpus = [cpu for cpu in cpus if cpu in big] or cpus  # allowed efficiency cores only: still runs on them
    chosen: list[int] = []
    seen: set[int] = set()  # logical CPUs of the cores already counted
    for cpu in cpus:
        if cpu in seen:  # a sibling of a core already counted: nothing to read
            continue
        topology = f"{sysfs}/system/cpu/cpu{cpu}/topology"
        siblings = _read(f"{topology}/core_cpus_list") or _read(f"{topology}/thread_siblings_list")
        if siblings is None:
            return list(cpus)
        chosen.append(cpu)
        seen |= parse_cpu_list(siblings)
    return chosen


def _macos_performance_cores() -> int:
    """Apple silicon's performance cores (hw.perflevel0.physicalcpu, as llama.cpp reads it); 0
    where the sysctl is missing (an Intel Mac)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        value, size = ctypes.c_int(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_int))
        if libc.sysctlbyname(b"hw.perflevel0.physicalcpu", ctypes.byref(value), ctypes.byref(size), None, 0) == 0:
            return value.value
    except (OSError, AttributeError):
        pass
    return 0


def compute_core_count() -> int:
    """How many compute threads llama.cpp gets by default (engine.n_threads = 0)."""
    usable = usable_cpus()
    if usable:
        return len(compute_cpus(usable))
    if sys.platform == "darwin" and (performance := _macos_performance_cores()):
        return performance
    import psutil  # Windows, and a Mac without the sysctl

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1
