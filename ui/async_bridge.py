"""Tasks the desktop starts on the qasync loop: held by strong references (the loop keeps only weak
ones), and an exception that escapes one goes to sys.excepthook, which the app turns into a
visible message (qasync #36) instead of a line lost on stderr."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Coroutine


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine, name: str | None = None) -> asyncio.Task:
        task = asyncio.get_event_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            sys.excepthook(type(error), error, error.__traceback__)

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


# ---- the event loop ------------------------------------------------------------------------------
# qasync 0.28's call_soon_threadsafe emits a Qt Signal(object, tuple) per call: one queued Qt event
# and one argument copy per streamed token. Ours puts handles in a deque and emits a signal with
# no arguments only when the deque was empty, so a burst of tokens wakes the loop once.

def new_event_loop(app, *, already_running: bool = False):
    """A qasync QEventLoop whose call_soon_threadsafe passes no Python objects through Qt.
    `already_running=True` is for tests: pytest-qt drives the Qt loop, this becomes the running loop."""
    import collections
    import threading

    import qasync
    from PySide6.QtCore import QObject, Qt, Signal

    class _Waker(QObject):
        wake = Signal()

    class EventLoop(qasync.QEventLoop):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._pending: collections.deque[asyncio.Handle] = collections.deque()
            self._pending_lock = threading.Lock()
            self._waker = _Waker()
            self._waker.wake.connect(self._run_pending, Qt.QueuedConnection)

        def call_soon_threadsafe(self, callback, *args, context=None):
            handle = asyncio.Handle(callback, args, self, context)
            with self._pending_lock:
                first = not self._pending
                self._pending.append(handle)
            if first:
                self._waker.wake.emit()
            return handle

        def _run_pending(self) -> None:
            with self._pending_lock:
                handles = list(self._pending)
                self._pending.clear()
            for handle in handles:
                if not handle.cancelled():
                    handle._run()

    return EventLoop(app, already_running=already_running)
