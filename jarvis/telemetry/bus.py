"""A tiny fan-out: emitters call `emit(record)`, subscribers are plain callables.

Subscribers run on the emitting thread (often a model's worker thread), so they must be quick
and thread-safe; a subscriber that raises is logged and kept, never allowed to break the engine.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from jarvis.telemetry.records import Record

log = logging.getLogger("jarvis.telemetry")
Subscriber = Callable[[Record], None]


class RecordBus:
    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers = self._subscribers + (fn,)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not fn)

        return unsubscribe

    def emit(self, record: Record) -> None:
        for fn in self._subscribers:  # a tuple snapshot: no lock on the hot path
            try:
                fn(record)
            except Exception:
                log.exception("telemetry subscriber %r failed on %s", fn, type(record).__name__)
