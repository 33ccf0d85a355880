"""Response cache (LRU + TTL over whole replies) and coalescing of identical in-flight requests.

The key covers everything that changes a reply: the model file (path, size, mtime), the full
message list or prompt, and every sampling parameter. A request with a random seed at a
temperature above 0 would not give the same reply twice, so it is never cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from typing import AsyncIterator

import cachetools

from jarvis.request import ChatRequest, Chunk, Timings


@dataclass(frozen=True)
class CachedReply:
    """A stored answer: its text and what generating it counted (tokens, how it ended)."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    constrained: str = ""
    tool_calls: tuple = ()


def cache_key(request: ChatRequest, model_identity: tuple) -> str | None:
    """A stable digest of what determines the reply, or None when the reply is not repeatable."""
    sp = request.sampling
    if sp.temperature > 0 and sp.seed < 0:
        return None
    if request.options.logprobs:  # a replay has no logprobs to give
        return None
    payload = {
        "model": list(model_identity),
        "messages": [[m.role, m.content] for m in request.messages],
        "prompt": request.prompt,
        "sampling": sp.model_dump(),
        "truncate": request.truncate,
        "grammar": asdict(request.options.grammar) if request.options.grammar else None,
        "tools": request.options.tools.wire() if request.options.tools is not None else None,
        "response_format": request.options.response_format.wire() if request.options.response_format else None,
        "calls": [[m.tool_call_id, [c.as_dict() for c in m.tool_calls]] for m in request.messages],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()


class _CountingTTLCache(cachetools.TTLCache):
    """TTLCache that counts LRU evictions and TTL expirations."""

    def __init__(self, maxsize: int, ttl: float):
        super().__init__(maxsize, ttl)
        self.evictions = 0
        self.expirations = 0

    def popitem(self):
        self.evictions += 1
        return super().popitem()

    def expire(self, time=None):
        expired = super().expire(time)
        self.expirations += len(expired)
        return expired


@dataclass
class CacheStats:
    """What the cache holds. Hits and misses are not here: each request's record says which it
    was (RequestRecord.cache), and PerfMonitor and /metrics count those, once."""

    enabled: bool
    size: int
    max_size: int
    evictions: int
    expirations: int
    coalesced: int
    ttl_seconds: float


class ResponseCache:
    def __init__(self, enabled: bool = True, max_size: int = 200, ttl_seconds: float = 300):
        self.enabled = enabled
        self._entries = _CountingTTLCache(max_size, ttl_seconds)
        self._lock = threading.Lock()  # the HTTP server and the UI share one cache
        self.coalesced = 0

    @classmethod
    def from_settings(cls, settings) -> "ResponseCache":
        c = settings.cache
        return cls(c.enabled, c.max_size, c.ttl_seconds)

    def get(self, key: str | None) -> CachedReply | None:
        if not self.enabled or key is None:
            return None
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str | None, text: str, timings: Timings, tool_calls: tuple = ()) -> None:
        """Store a finished answer (one that stopped or ran to its length; never a failed one)."""
        if not self.enabled or key is None or timings.finish_reason not in ("stop", "length"):
            return
        reply = CachedReply(text, timings.finish_reason, timings.prompt_tokens, timings.completion_tokens,
                            timings.constrained, tuple(tool_calls))
        with self._lock:
            self._entries[key] = reply

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            self._entries.expire()
            return CacheStats(self.enabled, len(self._entries), int(self._entries.maxsize), self._entries.evictions,
                              self._entries.expirations, self.coalesced, float(self._entries.ttl))


async def replay(reply: CachedReply, chunk_chars: int = 64) -> AsyncIterator[Chunk]:
    """A cached reply as stream chunks, so front ends need no second code path. It generated
    nothing: its timings carry the tokens counted once, and no instants (no queue, load or decode)."""
    text = reply.text
    pieces = [text[i:i + chunk_chars] for i in range(0, len(text), chunk_chars)] or [""]
    for piece in pieces[:-1]:
        yield Chunk(piece)
    timings = Timings(finish_reason=reply.finish_reason, prompt_tokens=reply.prompt_tokens,
                      completion_tokens=reply.completion_tokens, constrained=reply.constrained)
    yield Chunk(pieces[-1], done=True, timings=timings, tool_calls=reply.tool_calls)


class SharedGeneration:
    """One generation several identical requests listen to. Each listener gets every chunk from
    the start; one listener leaving does not stop the others. The producer stops (and its
    request is cancelled) only when the last listener has left."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.error: BaseException | None = None
        self.done = False
        self.listeners = 0
        self._changed = asyncio.Event()
        self.task: asyncio.Task | None = None

    def publish(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self._changed.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done = True
        self._changed.set()

    def close(self) -> None:
        self.done = True
        self._changed.set()

    async def listen(self):
        i = 0
        while True:
            while i < len(self.chunks):
                yield self.chunks[i]
                i += 1
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            self._changed.clear()
            await self._changed.wait()
