"""The engine's threads run below the window: a model's worker thread lowers its own scheduling
priority when it starts, so the Qt thread (the asyncio loop) gets a core first when the CPU is
busy, and the window stays smooth while answers stream.

On Linux, nice is per thread: os.setpriority(PRIO_PROCESS, <native thread id>, n) changes the
calling thread alone, and threads it creates later inherit it, so the llama.cpp (ggml/OpenMP)
workers that the first llama_decode starts from this thread run at the same lower priority.
Raising nice needs no privilege, nor does SCHED_BATCH, which the thread (and so its workers) also
takes: a batch thread's wake-up does not preempt the running thread, so a ggml worker woken at a
barrier waits for the core instead of taking it from the window's thread in the middle of a frame. Elsewhere os.setpriority would change the whole process (macOS)
or does not exist (Windows): there this is a no-op that says so once in the log.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger("jarvis.engine")
MAX_NICE = 19  # the lowest priority Linux has
_said_unsupported = False


def lower_this_thread(config) -> int | None:
    """Add `config.worker_nice` to the calling thread's nice value (Linux), capped at 19.
    Returns the thread's nice value after, or None where per-thread nice is not available."""
    global _said_unsupported
    step = config.worker_nice
    if step <= 0:
        return None
    if not sys.platform.startswith("linux"):
        if not _said_unsupported:
            _said_unsupported = True
            log.info("engine.worker_nice = %d: per-thread priority is Linux-only; the engine threads run "
                     "at the process's priority on %s", step, sys.platform)
        return None
    tid = threading.get_native_id()
    try:
        nice = min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, tid) + step)
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as e:  # e.g. a sandbox that forbids it: the engine runs, at the window's priority
        log.warning("could not lower the engine thread's priority (engine.worker_nice = %d): %s", step, e)
        return None
    _batch_this_thread()
    return nice


def _batch_this_thread() -> None:
    """SCHED_BATCH (keeping the nice value): a CPU-bound thread whose wake-ups never preempt a
    running thread. The ggml workers wake at a barrier several times per token; as batch threads
    they wait for the next tick instead of taking the core from the window's thread mid-frame."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # 0: the calling thread (Linux)
    except (OSError, AttributeError) as e:
        log.info("engine threads stay SCHED_OTHER (SCHED_BATCH refused: %s)", e)
