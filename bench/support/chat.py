"""Asking an Assistant in tests and benches: greedy (reproducible) requests, bounded waits."""

from __future__ import annotations

import asyncio


def greedy(a, text: str, max_tokens: int = 8, **kw):
    """A temperature-0 request that skips the response cache unless told otherwise."""
    kw.setdefault("use_cache", False)
    return a.request(text, temperature=0, max_tokens=max_tokens, **kw)


async def bounded(aw, timeout: float):
    """Every wait has an end: a hang becomes asyncio.TimeoutError, which the caller reports."""
    return await asyncio.wait_for(aw, timeout)
