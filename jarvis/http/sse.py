"""Server-sent events the way OpenAI streams them: `data: {json}\n\n` per event, `data: [DONE]` last.

A client that leaves is noticed by aiohttp itself: the server runs with handler_cancellation
(http/app.py start_server), so the handler task is cancelled the moment the connection drops,
whether it is streaming or still waiting in the engine's queue. The CancelledError reaches the
awaited stream, whose `finally` cancels the engine sequence: the slot is freed at the next step.
Nothing polls. `EventStream.send` still turns a failed write into ClientGone.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from aiohttp import web

DONE = b"data: [DONE]\n\n"


class ClientGone(Exception):
    """The client closed the connection before the answer was complete."""


def _closed(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def encode(event: Any, name: str | None = None) -> bytes:
    data = b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
    return b"event: " + name.encode() + b"\n" + data if name else data


class EventStream:
    """A text/event-stream response. `send` raises ClientGone when the client has left."""

    def __init__(self, request: web.Request, headers: dict[str, str] | None = None) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no", **(headers or {})})

    async def start(self) -> None:
        await self.response.prepare(self.request)

    async def send(self, event: Any, name: str | None = None) -> None:
        """One event; `name` adds an `event:` line (Responses and Messages name every event)."""
        await self._write(encode(event, name))

    async def send_encoded(self, data: bytes) -> None:
        """Events already encoded (`encode`, or a surface's own pre-encoded bytes)."""
        await self._write(data)

    async def comment(self, text: str) -> None:
        """A comment line (`: text`): clients and OpenAI's SDKs skip it; a person reading the stream
        sees it (the queue position while a request waits for a slot)."""
        await self._write(b": " + text.replace("\n", " ").encode() + b"\n\n")

    async def done(self, marker: bool = True, before: bytes = b"") -> None:
        """End the stream; `marker`: OpenAI's chat streams end with `data: [DONE]`, named-event
        streams (Responses, Messages) with their own last event. `before`: encoded events that go
        first, in the same write as the end."""
        tail = before + (DONE if marker else b"")
        if tail and _closed(self.request):
            raise ClientGone()
        with contextlib.suppress(ConnectionError):
            await self.response.write_eof(tail)

    async def _write(self, data: bytes) -> None:
        if _closed(self.request):
            raise ClientGone()
        try:
            await self.response.write(data)
        except ConnectionError:  # aiohttp's ClientConnectionResetError is one
            raise ClientGone() from None
