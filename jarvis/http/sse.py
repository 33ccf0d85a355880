"""Server-sent events the way OpenAI streams them: `data: {json}\n\n` per event, `data: [DONE]` last.

Also `until_disconnected`: runs a handler's work as a task and cancels it when the client goes
away. aiohttp (handler_cancellation off, its default) keeps running a handler whose client has
left, and a request still waiting in the queue writes nothing that could fail, so the
transport is watched instead. Cancelling the task throws CancelledError into the awaited
stream, whose `finally` cancels the engine sequence: the slot is freed at the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Awaitable, TypeVar

from aiohttp import web

T = TypeVar("T")
DONE = b"data: [DONE]\n\n"
POLL_S = 0.02  # how often a waiting handler looks at its connection


class ClientGone(Exception):
    """The client closed the connection before the answer was complete."""


def _closed(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def until_disconnected(request: web.Request, work: Awaitable[T], poll_s: float = POLL_S) -> T:
    """Await `work`; if the client disconnects first, cancel it and raise ClientGone."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if _closed(request):
                raise ClientGone()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def encode(event: Any) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


class EventStream:
    """A text/event-stream response. `send` raises ClientGone when the client has left."""

    def __init__(self, request: web.Request, headers: dict[str, str] | None = None) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no", **(headers or {})})

    async def start(self) -> None:
        await self.response.prepare(self.request)

    async def send(self, event: Any) -> None:
        await self._write(encode(event))

    async def done(self) -> None:
        await self._write(DONE)
        with contextlib.suppress(ConnectionError):
            await self.response.write_eof()

    async def _write(self, data: bytes) -> None:
        if _closed(self.request):
            raise ClientGone()
        try:
            await self.response.write(data)
        except ConnectionError:  # aiohttp's ClientConnectionResetError is one
            raise ClientGone() from None
