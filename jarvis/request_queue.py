"""A bounded, thread-safe priority queue of requests waiting for a slot.

Lower priority value first, then arrival order. The lock is held for O(log n) at most, so the
asyncio side never waits on the worker for long.

Queue position: every waiting item knows its place. After each change (a put, an admission, a
removal) the items whose place changed are told through `on_position(item, position, eta_s)`,
outside the lock (the engine hands it to the request's Mailbox, which wakes its stream). Position
1 is next in line; 0 means "a slot is free for it now" and is not reported. The wait estimate is
position x the recent time between admissions while requests were waiting: how fast slots have
been freeing up (None until two admissions were seen with a queue behind them).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable, Generic, TypeVar

from jarvis.errors import QueueFull

T = TypeVar("T")
PositionCallback = Callable[[T, int, "float | None"], None]


class PriorityRequestQueue(Generic[T]):
    def __init__(self, max_size: int, *, on_position: PositionCallback | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.max_size = max_size
        self._heap: list[tuple[int, int, T]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._on_position = on_position
        self._clock = clock
        self._free = 0  # slots free at the last put, less the admissions since: items that do not wait
        self._positions: dict[int, int] = {}  # id(item) -> last reported position
        self._last_admission: float | None = None  # while requests kept waiting since
        self.admission_interval_s: float | None = None  # EWMA of the time between admissions under load

    def put(self, item: T, priority: int, headroom: int = 0) -> int:
        """`headroom`: items about to leave at once (free slots), which do not count as waiting.
        Returns the item's place in line (0: a slot is free for it)."""
        with self._lock:
            if len(self._heap) >= self.max_size + headroom:
                raise QueueFull(self.max_size)
            heapq.heappush(self._heap, (int(priority), next(self._order), item))
            self._free = headroom
            changes = self._changes()
            position = self._position_of(item)
        self._notify(changes)
        return position

    def pop(self) -> T | None:
        with self._lock:
            if not self._heap:
                return None
            item = heapq.heappop(self._heap)[2]
            self._positions.pop(id(item), None)
            self._free = max(0, self._free - 1)
            now = self._clock()
            if self._last_admission is not None:
                gap = now - self._last_admission
                prev = self.admission_interval_s
                self.admission_interval_s = gap if prev is None else 0.7 * prev + 0.3 * gap
            # Only a gap with requests waiting all along measures how fast slots free up.
            self._last_admission = now if self._heap else None
            changes = self._changes()
        self._notify(changes)
        return item

    def remove(self, item: T) -> bool:
        with self._lock:
            for i, entry in enumerate(self._heap):
                if entry[2] is item:
                    self._heap[i] = self._heap[-1]
                    self._heap.pop()
                    heapq.heapify(self._heap)
                    self._positions.pop(id(item), None)
                    if not self._heap:
                        self._last_admission = None
                    changes = self._changes()
                    break
            else:
                return False
        self._notify(changes)
        return True

    def drain(self) -> list[T]:
        with self._lock:
            items = [entry[2] for entry in sorted(self._heap)]
            self._heap.clear()
            self._positions.clear()
            self._last_admission = None
            return items

    def snapshot(self) -> list[T]:
        with self._lock:
            return [entry[2] for entry in self._heap]

    def position(self, item: T) -> int | None:
        """The item's place in line now (1 = next; 0 = a slot is free for it), None if not queued."""
        with self._lock:
            return self._position_of(item)

    def __len__(self) -> int:
        return len(self._heap)

    # ---- positions (under the lock) -------------------------------------------------------
    def _position_of(self, item: T) -> int | None:
        for i, entry in enumerate(sorted(self._heap)):
            if entry[2] is item:
                return max(0, i + 1 - self._free)
        return None

    def _changes(self) -> list[tuple[T, int, float | None]]:
        if self._on_position is None:
            return []
        changes = []
        for i, (_, _, item) in enumerate(sorted(self._heap)):
            position = max(0, i + 1 - self._free)
            if position and self._positions.get(id(item)) != position:
                self._positions[id(item)] = position
                eta = None if self.admission_interval_s is None else position * self.admission_interval_s
                changes.append((item, position, eta))
        return changes

    def _notify(self, changes) -> None:
        for item, position, eta in changes:
            self._on_position(item, position, eta)
