"""Waiting on a condition in tests: poll it, never sleep a fixed time, fail clearly instead of hanging.

`timeout` is a hang guard, not a speed limit: it is generous on purpose (the 2 shared cores may be
busy with other work), and no test uses a short one to claim that something is fast. Speed is
measured in bench/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

HANG_GUARD_S = 240.0  # under the 300 s test timeout, so this clearer message comes first
POLL_S = 0.01


def _failure(condition: Callable[[], object], timeout: float) -> AssertionError:
    name = getattr(condition, "__qualname__", repr(condition))
    return AssertionError(f"condition {name} not reached within {timeout:g} s")


def until(condition: Callable[[], object], timeout: float = HANG_GUARD_S) -> None:
    """Block this thread until `condition()` is true. Use it off the event loop (plain tests,
    `asyncio.to_thread`); on the loop use `until_async`, which lets the loop run meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise _failure(condition, timeout)
        time.sleep(POLL_S)


async def until_async(condition: Callable[[], object], timeout: float = HANG_GUARD_S) -> None:
    """`until` for a coroutine on the running loop: awaits between polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise _failure(condition, timeout)
        await asyncio.sleep(POLL_S)
