"""What every API surface reads out of the chunk stream: thinking, answer text and tool calls.

The one adapter between today's text-only `Chunk` and the surfaces (chat completions,
Responses, Messages): reasoning is split by jarvis.reasoning, tool calls are held back and
parsed by the request's ToolPlan. Streamed or not, a surface feeds every chunk's text and calls
`finish()` at the end, so the two answers are the same by construction.
"""

from __future__ import annotations

from jarvis.http.tools import ContentFilter, ToolCall, ToolPlan
from jarvis.reasoning import Piece, ReasoningSplitter

NO_TOOLS = ToolPlan((), "none", False)


class AnswerParser:
    def __init__(self, plan: ToolPlan = NO_TOOLS, thinking: bool = False) -> None:
        self._reasoning = ReasoningSplitter(thinking)
        self._tools = ContentFilter(plan) if plan.active else None
        self.calls: list[ToolCall] = []
        self.reasoning_text = ""  # everything thought so far
        self.content_text = ""  # everything answered so far (tool calls not included)

    def feed(self, text: str) -> list[Piece]:
        return self._route(self._reasoning.feed(text)) if text else []

    def finish(self) -> list[Piece]:
        """The last pieces; the tool calls are in `calls` afterwards."""
        out = self._route(self._reasoning.finish())
        if self._tools is not None:
            tail, self.calls = self._tools.finish()
            if tail:
                out.append(("content", tail))
                self.content_text += tail
        return out

    def _route(self, pieces: list[Piece]) -> list[Piece]:
        out: list[Piece] = []
        for kind, text in pieces:
            if kind == "content" and self._tools is not None:
                text = self._tools.feed(text)
            if not text:
                continue
            if kind == "content":
                self.content_text += text
            else:
                self.reasoning_text += text
            out.append((kind, text))
        return out
