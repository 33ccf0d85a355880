"""L1: whole replies in memory (cachetools LRU, a TTL per entry), the first level looked up.

Every call is cheap and takes only this cache's own lock, so the loop may call it directly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import cachetools

from jarvis.request import Reply


@dataclass(frozen=True)
class _Entry:
    reply: Reply
    ttl_s: float


class _CountingTLRUCache(cachetools.TLRUCache):
    """TLRUCache (an expiry per item) that counts LRU evictions and TTL expirations."""

    def __init__(self, maxsize: int, timer: Callable[[], float]):
        super().__init__(maxsize, lambda _key, entry, now: now + entry.ttl_s, timer=timer)
        self.evictions = 0
        self.expirations = 0

    def popitem(self):
        self.evictions += 1
        return super().popitem()

    def expire(self, time=None):
        expired = super().expire(time)
        self.expirations += len(expired)
        return expired


def reply_bytes(reply: Reply) -> int:
    """About what one reply weighs: its text (the record is a few hundred bytes more)."""
    return len(reply.text.encode("utf-8", errors="replace")) + 512


@dataclass
class CacheStats:
    """What the L1 holds, and (for the L1 and every level behind it, in `levels`) hits, misses,
    evictions, entries and bytes. A request's own record also says which level answered it
    (RequestRecord.cache): PerfMonitor and /metrics count those."""

    enabled: bool
    size: int
    max_size: int
    evictions: int
    expirations: int
    coalesced: int
    ttl_seconds: float
    levels: dict | None = None


class ResponseCache:
    """The L1. `ttl_seconds` is the default lifetime; `put(..., ttl_s=)` sets one per entry."""

    def __init__(self, enabled: bool = True, max_size: int = 200, ttl_seconds: float = 300,
                 clock: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self.ttl_seconds = ttl_seconds
        self._entries = _CountingTLRUCache(max_size, clock)
        self._lock = threading.Lock()  # the HTTP server and the UI share one cache
        self.coalesced = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str | None) -> Reply | None:
        if not self.enabled or key is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            return entry.reply

    def put(self, key: str | None, reply: Reply, ttl_s: float | None = None) -> None:
        if not self.enabled or key is None or reply.record.finish_reason not in ("stop", "length"):
            return
        with self._lock:
            self._entries[key] = _Entry(reply, self.ttl_seconds if ttl_s is None else ttl_s)

    def clear(self, model: str | None = None) -> None:
        with self._lock:
            if model is None:
                self._entries.clear()
                return
            for key in [k for k, e in self._entries.items() if e.reply.record.model == model]:
                del self._entries[key]

    def level_stats(self) -> dict:
        with self._lock:
            self._entries.expire()
            return {"entries": len(self._entries), "bytes": sum(reply_bytes(e.reply) for e in self._entries.values()),
                    "hits": self.hits, "misses": self.misses,
                    "evictions": self._entries.evictions + self._entries.expirations}

    def stats(self) -> CacheStats:
        with self._lock:
            self._entries.expire()
            return CacheStats(self.enabled, len(self._entries), int(self._entries.maxsize), self._entries.evictions,
                              self._entries.expirations, self.coalesced, float(self.ttl_seconds))
