"""The engine's threads against the real bundled model: they run below the window's priority
(engine.worker_nice), they are pinned one to a core where they fill every core
(engine.pin_threads), and a build whose AMX kernels crash keeps the weights out of them."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from jarvis.engine import Engine, EngineConfig, affinity, backend
from jarvis.engine.config import auto_threads
from jarvis.engine.cores import compute_cpus
from jarvis.request import ChatRequest, Message
from jarvis.sampling import SamplingParams

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def threads_of_this_process() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}


async def answer(engine: Engine) -> str:
    seq = engine.submit(ChatRequest(messages=(Message("user", "Name two fruits."),),
                                    sampling=SamplingParams(max_tokens=8, temperature=0)))
    return "".join([chunk.text async for chunk in engine.stream(seq)])


def engine_threads(model_path, config: EngineConfig, read):
    """Load with `config`, answer once, and return read(engine thread's id, the engine thread and
    every thread it started), while they live. Threads are counted from before the load: with
    pinning the engine thread starts llama.cpp's team at once, not at its first decode."""
    engine = Engine("m", model_path, config=config)
    before = threads_of_this_process()
    engine.load()
    try:
        assert asyncio.run(answer(engine)).strip()
        worker = engine._thread.native_id
        others = {t.native_id for t in threading.enumerate()} - {worker}  # asyncio's executor…: not the engine's
        started = threads_of_this_process() - before - others
        return read(engine, worker, started)
    finally:
        engine.close()


def run_engine(model_path, worker_nice: int):
    """(the engine thread's nice, the nice of the engine thread and of every thread it started
    (llama.cpp's workers), the caller's nice)."""
    return engine_threads(model_path, EngineConfig(context_length=256, n_threads=2, worker_nice=worker_nice),
                          lambda _, worker, started: (nice_of(worker), {tid: nice_of(tid) for tid in started},
                                                      nice_of(threading.get_native_id())))


@linux_only
def test_the_engine_thread_and_the_llama_threads_it_starts_run_at_the_configured_lower_priority(model_path):
    base = nice_of(threading.get_native_id())
    worker, started, caller = run_engine(model_path, worker_nice=3)
    assert worker == min(19, base + 3)
    assert len(started) >= 2  # the engine thread and at least one llama.cpp worker (n_threads = 2)
    assert set(started.values()) == {min(19, base + 3)}, started  # each inherited it
    assert caller == base  # the thread that loaded the model (the window's, in the app) is untouched


@linux_only
def test_worker_nice_zero_leaves_the_engine_at_the_process_priority(model_path):
    base = nice_of(threading.get_native_id())
    worker, started, _ = run_engine(model_path, worker_nice=0)
    assert worker == base and set(started.values()) == {base}


def affinity_of_engine_threads(model_path, n_threads: int, pin: bool):
    """({thread: its cores} for the engine thread and every thread it started, the engine
    thread's id, engine.pinned_cores)."""
    return engine_threads(model_path, EngineConfig(context_length=256, n_threads=n_threads, pin_threads=pin),
                          lambda engine, worker, started: ({tid: os.sched_getaffinity(tid) for tid in started},
                                                           worker, engine.pinned_cores))


two_cores = pytest.mark.skipif(len(affinity.usable_cpus()) < 2, reason="pinning is for two cores or more")


@linux_only
@two_cores
def test_compute_threads_that_fill_every_core_are_pinned_one_to_each_core(model_path):
    cpus = affinity.usable_cpus()
    assert "OPENMP = 1" in backend.system_info()  # the pinned llama.cpp decodes on an OpenMP team
    masks, worker, pinned = affinity_of_engine_threads(model_path, n_threads=len(cpus), pin=True)
    assert masks[worker] == {cpus[0]}  # the engine thread is OpenMP's thread 0
    one_core = [mask for mask in masks.values() if len(mask) == 1]
    assert sorted(next(iter(m)) for m in one_core) == cpus, masks  # each core has exactly one
    assert pinned == dict(enumerate(cpus))
    assert os.sched_getaffinity(0) == set(cpus)  # the caller (the window's thread in the app) stays free


@linux_only
@two_cores
def test_nothing_is_pinned_with_fewer_threads_than_cores_or_with_pinning_off(model_path):
    cpus = set(affinity.usable_cpus())
    masks, _, pinned = affinity_of_engine_threads(model_path, n_threads=len(cpus) - 1, pin=True)
    assert pinned is None and all(mask == cpus for mask in masks.values()), masks  # a core is left for the loop
    masks, _, pinned = affinity_of_engine_threads(model_path, n_threads=len(cpus), pin=False)
    assert pinned is None and all(mask == cpus for mask in masks.values()), masks


def test_pinning_is_for_threads_that_fill_the_cores_unless_the_user_binds_openmp_threads():
    assert affinity.should_pin(2, [0, 1], env={})
    assert affinity.should_pin(4, [2, 3, 4, 5], env={})  # a taskset's cores, not the machine's
    assert not affinity.should_pin(1, [0, 1], env={})  # a spare core: the loop runs there
    assert not affinity.should_pin(3, [0, 1], env={})  # more threads than cores: nothing to pin one to
    assert not affinity.should_pin(1, [0], env={})  # one core: nowhere else to go
    assert not affinity.should_pin(2, [0, 1], env={"OMP_PROC_BIND": "close"})  # the user's own binding


@linux_only
def test_the_default_counts_the_cores_this_process_may_use_not_the_machines():
    """engine.n_threads = 0 under a taskset or a container's cpuset: one thread per allowed core
    (os.cpu_count() would start the machine's count of threads on them)."""
    allowed = os.sched_getaffinity(0)
    assert auto_threads() == len(compute_cpus(sorted(allowed)))
    os.sched_setaffinity(0, {min(allowed)})  # this thread only: what a taskset gives a process
    try:
        assert auto_threads() == 1
        assert not affinity.should_pin(2, affinity.usable_cpus(), env={})
    finally:
        os.sched_setaffinity(0, allowed)


def test_a_build_that_runs_amx_kernels_keeps_the_weights_out_of_the_extra_buffers(monkeypatch):
    """llama.cpp's AMX mul_mat segfaults in llama_decode (ggml-org/llama.cpp#20824): on a build
    that reports AMX_INT8 the model loads without the extra buffer types, elsewhere with them."""
    monkeypatch.setattr(backend, "system_info", lambda: "CPU : AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 |")
    assert backend.extra_buffers_allowed() is False
    monkeypatch.setattr(backend, "system_info", lambda: "CPU : AVX2 = 1 | AVX512 = 1 | OPENMP = 1 | REPACK = 1 |")
    assert backend.extra_buffers_allowed() is True
