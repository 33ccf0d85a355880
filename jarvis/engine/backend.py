"""Process-wide llama.cpp set-up: backend init, log routing, build capabilities."""

from __future__ import annotations

import collections
import ctypes
import logging
import threading

import llama_cpp as ll

log = logging.getLogger("jarvis.llama")
# ggml_log_level in this llama.cpp: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5 (continues the last line).
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_init_lock = threading.Lock()
_initialised = False
_last_level = logging.DEBUG
# The last lines llama.cpp logged at warning or above: a failed load quotes them in its error.
recent_problems: collections.deque[str] = collections.deque(maxlen=8)


@ll.llama_log_callback
def _route_log(level: int, text: bytes, _user_data) -> None:
    global _last_level
    py_level = _last_level if level == 5 else _LEVELS.get(level, logging.DEBUG)  # 5 = continuation
    _last_level = py_level
    message = text.decode("utf-8", errors="replace").rstrip()
    if message and py_level >= logging.WARNING:
        recent_problems.append(message)
    if message and log.isEnabledFor(py_level):
        log.log(py_level, "%s", message)


def ensure_backend() -> None:
    """Initialise llama.cpp once and send its logs to the `jarvis.llama` logger.

    The ctypes callback lives at module level for the life of the process: llama.cpp keeps the
    raw pointer, and a collected callback would segfault on the next log line.
    """
    global _initialised
    with _init_lock:
        if _initialised:
            return
        ll.llama_log_set(_route_log, ctypes.c_void_p(0))
        ll.llama_backend_init()
        _initialised = True


CPU_ONLY_NOTE = ("GPU layers were requested but this llama.cpp build cannot offload; running on the CPU. "
                 "`jarvis setup-cuda --check` tells what a CUDA build needs.")
_warned_cpu_only = False


def warn_cpu_only_once() -> None:
    global _warned_cpu_only
    if not _warned_cpu_only:
        _warned_cpu_only = True
        logging.getLogger("jarvis.engine").warning("%s", CPU_ONLY_NOTE)


def cpu_has_amx() -> bool:
    """The CPU advertises Intel AMX (Linux: /proc/cpuinfo); False where that cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_int8" in line.split() or "amx_tile" in line.split()
    except OSError:
        pass
    return False


def extra_buffers_allowed(setting: str = "auto") -> bool:
    """Whether llama.cpp may use its extra weight buffers (repacking, AMX): engine.weight_repacking.
    "auto" turns them off on AMX CPUs, where llama.cpp 0.3.36's AMX matrix multiply segfaults in
    the first llama_decode of a prompt (ggml_backend_amx_mul_mat)."""
    if setting == "auto":
        return not cpu_has_amx()
    return setting == "on"


def supports_gpu_offload() -> bool:
    return bool(ll.llama_supports_gpu_offload())


def system_info() -> str:
    return ll.llama_print_system_info().decode("utf-8", errors="replace").strip()
