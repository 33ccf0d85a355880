"""The app's log file, where native crashes leave their evidence.

A segmentation fault or an abort in llama.cpp or Qt kills the process before any Python handler
runs. faulthandler, enabled here on the log file, writes every thread's Python stack there from
the signal handler (SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL), so a crash a user reports comes
with the line each thread was on. The same file receives what the process logs (warnings and
errors; more with `jarvis -v`), at `general.log_level` and above.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import time
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"
_enabled: dict[Path, logging.Handler] = {}


def enable(path: Path, level: str = "WARNING") -> Path | None:
    """Open `path` for appending, send log records and faulthandler's dumps (all threads) there.
    Returns the path, or None when the file cannot be opened (the app runs without it; the
    error is said on stderr by logging)."""
    path = Path(path)
    if path in _enabled:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as e:
        logging.getLogger("jarvis").warning("No log file: %s cannot be opened (%s).", path, e)
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    logging.getLogger().addHandler(handler)
    stream = handler.stream
    stream.write(f"---- JARVIS pid {os.getpid()} started {time.strftime('%Y-%m-%d %H:%M:%S')} ----\n")
    stream.flush()
    # faulthandler writes to the file descriptor from the signal handler, past Python's buffers.
    faulthandler.enable(file=stream, all_threads=True)
    _enabled[path] = handler
    return path
