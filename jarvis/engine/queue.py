"""A bounded, thread-safe priority queue of requests waiting for a slot.

Lower priority value first, then arrival order. The lock is held for O(log n) at most, so the
asyncio side never waits on the worker for long.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from typing import Generic, TypeVar

from jarvis.errors import QueueFull

T = TypeVar("T")


class PriorityRequestQueue(Generic[T]):
    def __init__(self, max_size: int):
        self.max_size = max_size
        self._heap: list[tuple[int, int, T]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def put(self, item: T, priority: int, headroom: int = 0) -> None:
        """`headroom`: items about to leave at once (free slots), which do not count as waiting."""
        with self._lock:
            if len(self._heap) >= self.max_size + headroom:
                raise QueueFull(self.max_size)
            heapq.heappush(self._heap, (int(priority), next(self._order), item))

    def pop(self) -> T | None:
        with self._lock:
            return heapq.heappop(self._heap)[2] if self._heap else None

    def remove(self, item: T) -> bool:
        with self._lock:
            for i, entry in enumerate(self._heap):
                if entry[2] is item:
                    self._heap[i] = self._heap[-1]
                    self._heap.pop()
                    heapq.heapify(self._heap)
                    return True
            return False

    def drain(self) -> list[T]:
        with self._lock:
            items = [entry[2] for entry in sorted(self._heap)]
            self._heap.clear()
            return items

    def snapshot(self) -> list[T]:
        with self._lock:
            return [entry[2] for entry in self._heap]

    def __len__(self) -> int:
        return len(self._heap)
