"""The engine's threads run below the window: a model's worker thread lowers its own scheduling
priority when it starts, so the Qt thread (the asyncio loop) gets a core first when the CPU is
busy, and the window stays smooth while answers stream.

On Linux, nice is per thread: os.setpriority(PRIO_PROCESS, <native thread id>, n) changes the
calling thread alone, and threads it creates later inherit it, so the llama.cpp (ggml/OpenMP)
workers that the first llama_decode starts from this thread run at the same lower priority.
Raising nice needs no privilege. Elsewhere os.setpriority would change the whole process (macOS)
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
    return nice
