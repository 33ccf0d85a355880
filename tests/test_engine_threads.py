"""The engine's threads against the real bundled model: they run below the window's priority
(engine.worker_nice), and a build whose AMX kernels crash keeps the weights out of them."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from jarvis.engine import Engine, EngineConfig, backend
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


def run_engine(model_path, worker_nice: int):
    """Load, answer once (the first llama_decode starts llama.cpp's worker threads), and return
    (the engine thread's nice, the nice of the engine thread and of every thread its answer
    started, the caller's nice)."""
    engine = Engine("m", model_path, config=EngineConfig(context_length=256, n_threads=2, worker_nice=worker_nice))
    engine.load()
    try:
        worker = engine._thread.native_id
        before = threads_of_this_process() - {worker}
        assert asyncio.run(answer(engine)).strip()
        started = threads_of_this_process() - before
        others = {t.native_id for t in threading.enumerate()} - {worker}
        started -= others  # Python threads of others (asyncio's executor…) are not the engine's
        return nice_of(worker), {tid: nice_of(tid) for tid in started}, nice_of(threading.get_native_id())
    finally:
        engine.close()


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


def test_a_build_that_runs_amx_kernels_keeps_the_weights_out_of_the_extra_buffers(monkeypatch):
    """llama.cpp's AMX mul_mat segfaults in llama_decode (ggml-org/llama.cpp#20824): on a build
    that reports AMX_INT8 the model loads without the extra buffer types, elsewhere with them."""
    monkeypatch.setattr(backend, "system_info", lambda: "CPU : AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 |")
    assert backend.extra_buffers_allowed() is False
    monkeypatch.setattr(backend, "system_info", lambda: "CPU : AVX2 = 1 | AVX512 = 1 | OPENMP = 1 | REPACK = 1 |")
    assert backend.extra_buffers_allowed() is True
