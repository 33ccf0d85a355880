"""What every API surface reads out of the chunk stream: thinking apart from the answer.

Tool calls arrive whole on the last chunk (`Chunk.tool_calls`, parsed below any surface); thinking
arrives either split already (`Chunk.reasoning`, from a remote server that splits it) or inside
the text as `<think>…</think>`, which jarvis.reasoning splits here, once for every surface.
Streamed or not, a surface feeds every chunk and calls `finish()` at the end, so the two answers
are the same by construction.
"""

from __future__ import annotations

from jarvis.reasoning import Piece, ReasoningSplitter
from jarvis.request import Chunk, ToolCall


class AnswerParser:
    def __init__(self, thinking: bool = False) -> None:
        self._reasoning = ReasoningSplitter(thinking)
        self.calls: tuple[ToolCall, ...] = ()
        self._reasoning_parts: list[str] = []
        self._content_parts: list[str] = []  # joined when read: `+=` per token copied the whole answer each time

    @property
    def reasoning_text(self) -> str:
        """Everything thought so far."""
        return "".join(self._reasoning_parts)

    @property
    def content_text(self) -> str:
        """Everything answered so far (tool calls not included)."""
        return "".join(self._content_parts)

    def feed(self, chunk: Chunk) -> list[Piece]:
        pieces: list[Piece] = [("reasoning", chunk.reasoning)] if chunk.reasoning else []
        if chunk.text:
            pieces += self._reasoning.feed(chunk.text)
        if chunk.done:
            self.calls = chunk.tool_calls
        return self._count(pieces)

    def finish(self) -> list[Piece]:
        """The last pieces (what the splitter held back)."""
        return self._count(self._reasoning.finish())

    def _count(self, pieces: list[Piece]) -> list[Piece]:
        for kind, text in pieces:
            (self._content_parts if kind == "content" else self._reasoning_parts).append(text)
        return pieces
