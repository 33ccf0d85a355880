"""Background tasks an owner starts and must stop: the loop keeps only weak references to tasks,
so an owner holds them here, and on close cancels them and waits for each to end."""

from __future__ import annotations

import asyncio
import contextlib


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):  # each one's end, whatever it was
                await task
