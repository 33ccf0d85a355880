"""Per-client token buckets for the /v1 routes: `rate` requests per second on average, bursts of
up to `burst`. Keyed on the peer address; off when rate is 0. Over the limit -> 429 in OpenAI's
shape with Retry-After, and `on_reject` is called (the runtime counts `http.rate_limited`)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Callable

from aiohttp import web

from jarvis.http.errors import error_response


class TokenBuckets:
    """Bounded: at most `max_clients` buckets; the least recently seen goes first (a forgotten
    client starts again with a full bucket, which is what it would have refilled to anyway)."""

    def __init__(self, rate: float, burst: int, max_clients: int = 4096, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Take one token: 0.0 when allowed, else the seconds until one is available."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def rate_limit_middleware(rate: float, burst: int, prefix: str = "/v1/",
                          on_reject: Callable[[], None] = lambda: None):
    buckets = TokenBuckets(rate, burst)

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if request.path.startswith(prefix):
            wait = buckets.take(request.remote or "unknown")
            if wait > 0:
                on_reject()
                return error_response(
                    429, f"Too many requests from {request.remote}: the limit is {rate:g} per second, bursts "
                         f"of {burst} (server.rate_limit_rps, server.rate_limit_burst). Retry in {wait:.2f} s.",
                    "rate_limit_exceeded", {"Retry-After": str(max(1, math.ceil(wait)))})
        return await handler(request)

    middleware.buckets = buckets  # type: ignore[attr-defined]
    return middleware
