"""One core per compute thread, where llama.cpp's threads fill every core the process may use.

Why: with exactly as many cores as compute threads (the default, `engine.n_threads = 0`, on a CPU
without SMT: one thread per physical core, cores.py), the asyncio loop's share of a step (a few
streams' SSE events, 0.2-0.3 ms) has to preempt one compute thread. Its partner reaches ggml's
OpenMP barrier, spins for libgomp's ~26 us and goes to sleep; its core is then idle and the kernel
pulls the preempted thread over to it, and when the barrier wakes the partner the two compute
threads take turns on one core, ~40 us at a time, for 1-4 ms until the balancer splits them again.
`jarvis bench --suite sched-profile` counted 928-1,064 such turns per recording of two four-stream
loads, and 0 with the threads pinned. Pinned, a preempted thread waits on its own core for the
loop's burst and the two never share one. Where there are more cores than compute threads the loop
has a core to itself and nothing is pinned; a user's own OpenMP binding (OMP_PROC_BIND, OMP_PLACES,
GOMP_CPU_AFFINITY) is left alone.

How: ggml runs a decode on the OpenMP team of the thread that calls it (the engine's worker), and
libgomp keeps that team for the thread's later parallel regions of the same size. So one parallel
region of our own, on the worker, before its first decode, runs on exactly the threads every
decode will use, and each pins itself by its OpenMP thread number. Where llama.cpp was built
without OpenMP (its own thread pool) or the runtime is not found, nothing is pinned.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading

from jarvis.engine import backend
from jarvis.engine.cores import usable_cpus

log = logging.getLogger(__name__)

USER_BINDING = ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY")
_RUNTIMES = ("libgomp", "libomp", "libiomp5")  # the last two also serve the GOMP_ entry points


def should_pin(n_threads: int, cpus: list[int], env=os.environ) -> bool:
    """Pin when the compute threads fill every usable core, one each, and the user has not bound
    OpenMP threads themselves."""
    return len(cpus) > 1 and n_threads == len(cpus) and not any(env.get(k) for k in USER_BINDING)


def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime llama.cpp has loaded into this process (not a second copy), or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line[line.index("/"):].rstrip("\n") for line in maps if "/" in line}  # the mapped file
    except OSError:
        return None
    for path in sorted(paths):
        if os.path.basename(path).startswith(_RUNTIMES):
            try:
                return ctypes.CDLL(path)  # already mapped: dlopen hands back the same library
            except OSError:
                continue
    return None


def pin_compute_threads(n_threads: int) -> dict[int, int] | None:
    """On the engine's worker thread, before its first decode: pin the OpenMP team that ggml will
    decode on, thread i to the i-th usable core. Returns {OpenMP thread number: core}, or None
    where nothing was pinned (more cores than threads, the user's own binding, no OpenMP)."""
    cpus = usable_cpus()
    if not should_pin(n_threads, cpus) or "OPENMP = 1" not in backend.system_info():
        return None
    runtime = _openmp_runtime()
    if runtime is None:
        return None
    pinned: dict[int, int] = {}
    failed: list[str] = []
    lock = threading.Lock()

    def pin_me(_data) -> None:  # runs once on every thread of the team, the worker included
        number = runtime.omp_get_thread_num()
        core = cpus[number]  # should_pin: one thread per core
        try:
            os.sched_setaffinity(0, {core})
        except OSError as e:  # e.g. a cpuset that changed under us: that thread stays free
            with lock:
                failed.append(f"thread {number}: {e}")
            return
        with lock:
            pinned[number] = core

    region = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(pin_me)
    runtime.GOMP_parallel.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint)
    runtime.GOMP_parallel.restype = None
    runtime.GOMP_parallel(ctypes.cast(region, ctypes.c_void_p), None, n_threads, 0)
    if failed:
        log.warning("could not pin every llama.cpp thread to a core: %s", "; ".join(failed))
    log.info("llama.cpp's %d compute threads pinned one to a core: %s", n_threads, pinned)
    return pinned or None
