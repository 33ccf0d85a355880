"""A loop's doorbell: how the engine's worker wakes an asyncio loop once per step, keeping the GIL.

`loop.call_soon_threadsafe` wakes a loop by sending a byte on its self-pipe, and the socket call
releases the GIL. The loop, woken by that very byte, then often takes the GIL first and runs its
share of the step (SSE writes, JSON) while the worker waits to get it back, right where the
worker is about to start the next llama_decode: measured in `jarvis serve` at one stream, that
wake-up took 50 us at the median and 250-400 us at the 90th percentile of steps. Here the worker
writes to an eventfd through libc with the GIL held (ctypes.PyDLL does not release it; an
eventfd write never blocks), so the loop wakes but cannot run Python until the worker lets go of
the GIL inside llama_decode, which is when the loop's work should run.

One doorbell per loop, made on the loop's own thread (`for_loop`, from where a request is
submitted) and watched with `add_reader`, so it works under qasync too. Where there is no eventfd
(not Linux) or no doorbell yet, StepWaker falls back to call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import os
import weakref
from typing import Callable

_doorbells: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Doorbell]" = weakref.WeakKeyDictionary()


def _gil_holding_write():
    if not hasattr(os, "eventfd"):
        return None
    try:
        write = ctypes.PyDLL(None).write  # PyDLL: the call keeps the GIL
    except (OSError, AttributeError):
        return None
    write.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
    write.restype = ctypes.c_ssize_t
    return write


_write = _gil_holding_write()
_ONE = ctypes.c_uint64(1)
_ONE_AT = ctypes.addressof(_ONE)  # passed as a plain address: no byref object per ring


class Doorbell:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._calls: collections.deque[Callable[[], None]] = collections.deque()  # appended on any thread
        weakref.finalize(self, os.close, self._fd)  # closed when nobody can ring it any more
        loop.add_reader(self._fd, self._answer)

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> "Doorbell | None":
        """The loop's doorbell, made on first use; call on the loop's thread (add_reader is not
        thread-safe). None where the platform or the loop has none to offer."""
        bell = _doorbells.get(loop)
        if bell is None and _write is not None:
            try:
                bell = _doorbells[loop] = cls(loop)
            except (NotImplementedError, OSError, RuntimeError):  # e.g. a loop without add_reader
                return None
        return bell

    @staticmethod
    def of(loop: asyncio.AbstractEventLoop) -> "Doorbell | None":
        """The loop's doorbell if one was made (any thread)."""
        return _doorbells.get(loop)

    def ring(self, calls: list[Callable[[], None]]) -> None:
        """Run `calls` on the loop soon, in order; any thread. The loop wakes without this thread
        losing the GIL."""
        self._calls.extend(calls)
        _write(self._fd, _ONE_AT, 8)

    def _answer(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._fd)
        calls = self._calls
        while calls:
            call = calls.popleft()
            try:
                call()
            except Exception as e:  # one failing callback must not starve the rest
                loop = self._loop()
                if loop is not None:
                    loop.call_exception_handler({"message": "doorbell callback failed", "exception": e})
