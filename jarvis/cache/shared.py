"""Replaying a stored reply as a stream, and one generation shared by identical requests in flight."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from jarvis.request import Chunk, Reply, Timings



async def replay(reply: Reply, chunk_chars: int = 64) -> AsyncIterator[Chunk]:
    """A cached reply as stream chunks, so front ends need no second code path. It generated
    nothing: its timings carry the tokens the stored answer counted and no instants (no queue,
    load or decode); the Assistant builds its record, with the level that answered."""
    text = reply.text
    pieces = [text[i:i + chunk_chars] for i in range(0, len(text), chunk_chars)] or [""]
    for piece in pieces[:-1]:
        yield Chunk(piece)
    r = reply.record
    timings = Timings(finish_reason=r.finish_reason, stop_sequence=r.stop_sequence, prompt_tokens=r.prompt_tokens,
                      completion_tokens=r.completion_tokens, reasoning_tokens=r.reasoning_tokens, constrained=r.constrained)
    yield Chunk(pieces[-1], done=True, timings=timings)


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
