"""Process-wide llama.cpp set-up: backend init, log routing, build capabilities."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import platform
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


# The C ABIs where a function that reads fewer arguments than its caller passes is safe to call:
# every argument travels in a register the callee may ignore, and the caller cleans up.
_REGISTER_ARGUMENT_ABIS = {"x86_64", "amd64", "aarch64", "arm64"}
_discard_sink = None  # see _discarding_callback


def _discarding_callback():
    """A native log callback that does nothing, or None where there is none to be had.

    libc's abs(int) reads only its first argument and returns in a scratch register, so on the
    ABIs above llama.cpp's callback(level, text, user_data) through it runs no code of note and,
    unlike any Python callback, never waits for the GIL."""
    global _discard_sink
    if _discard_sink is None and platform.machine().lower() in _REGISTER_ARGUMENT_ABIS:
        try:
            libc = ctypes.cdll.msvcrt if platform.system() == "Windows" else ctypes.CDLL(None)
            _discard_sink = ctypes.cast(libc.abs, ll.llama_log_callback)  # kept: llama.cpp holds the pointer
        except (AttributeError, OSError):
            return None
    return _discard_sink


@contextlib.contextmanager
def logs_discarded():
    """llama.cpp's log lines discarded in native code while the block runs.

    Loading a model logs ~2,300 lines (DEBUG: one per tensor created, one per graph input while
    the context reserves its compute graphs). Through the Python callback each takes the GIL, and
    while `jarvis serve` imports on another thread each waits up to a switch interval for it: its
    open ahead took 0.79 s with them and 0.69 s without (medians of 8 alternating launches; alone,
    0.6 s), and the imports beside it lost those turns too. Only for work whose
    failure is redone with the logs on (EarlyOpen: the engine's own open reports why), and not
    when jarvis.llama logs at INFO (`jarvis -v`), where the lines are wanted. The callback is
    process-wide: a load on another thread meanwhile loses its lines too (at start-up nothing
    else is loading)."""
    ensure_backend()
    sink = _discarding_callback()
    if sink is None or log.isEnabledFor(logging.INFO):
        yield
        return
    ll.llama_log_set(sink, ctypes.c_void_p(0))
    try:
        yield
    finally:
        ll.llama_log_set(_route_log, ctypes.c_void_p(0))


CPU_ONLY_NOTE = ("GPU layers were requested but this llama.cpp build cannot offload; running on the CPU. "
                 "`jarvis setup-cuda --check` tells what a CUDA build needs.")
_warned_cpu_only = False


def warn_cpu_only_once() -> None:
    global _warned_cpu_only
    if not _warned_cpu_only:
        _warned_cpu_only = True
        logging.getLogger("jarvis.engine").warning("%s", CPU_ONLY_NOTE)


def supports_gpu_offload() -> bool:
    return bool(ll.llama_supports_gpu_offload())


# llama.cpp's AMX matrix kernels (ggml_backend_amx_mul_mat, on weights repacked into its AMX
# buffer at load) segfault in an OpenMP worker during llama_decode on this llama.cpp, on Xeons
# with AMX (Sapphire Rapids and later): ggml-org/llama.cpp#20824, closed upstream without a fix.
# Measured here: every run of the engine or UI tests on such a machine died in its first decode,
# and none with the extra buffers off.
AMX_NOTE = ("llama.cpp's AMX kernels are off on this CPU: they crash in llama_decode (ggml-org/llama.cpp#20824); "
            "weights stay in the plain CPU buffer")
_said_amx = False


def extra_buffers_allowed(setting: str = "auto") -> bool:
    """Whether a model may put its weights in the CPU backend's extra buffer types (AMX, and the
    REPACK layouts of Q4_0/Q4_K/IQ4_NL/Q8_0; llama.cpp has one switch for both), as
    engine.weight_repacking says: "on", "off", or "auto" = not when this build runs AMX kernels
    (`AMX_INT8 = 1` in its system info), which crash."""
    global _said_amx
    if setting != "auto":
        return setting == "on"
    if "AMX_INT8 = 1" not in system_info():
        return True
    if not _said_amx:
        _said_amx = True
        log.info("%s", AMX_NOTE)
    return False


def system_info() -> str:
    return ll.llama_print_system_info().decode("utf-8", errors="replace").strip()
