"""A reasoning model's thinking, split from its answer.

Models that think (DeepSeek R1, Qwen3, QwQ, ...) open their reply with `<think>…</think>` and
answer after it. Every API surface sends the thinking in its own field (chat completions'
`reasoning_content` and `reasoning`, Responses' `reasoning` items, Messages' `thinking` blocks),
so the split happens once, here, below HTTP, on the text as it streams: a tag cut across two
chunks is held back until it is whole, and what is not a think block passes straight through.
"""

from __future__ import annotations

from typing import Literal

OPEN, CLOSE = "<think>", "</think>"
Kind = Literal["reasoning", "content"]
Piece = tuple[Kind, str]


def tail_prefix(text: str, tag: str) -> int:
    """How many characters at the end of `text` could be the start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ReasoningSplitter:
    """Feed the reply's text as it comes; get ("reasoning" | "content", text) pieces back.

    Only a think block at the very start of the reply (after whitespace) counts: a `<think>` in
    the middle of an answer is the answer's text. `thinking=True` starts inside the block, for
    chat templates that open it in the prompt (the reply then only closes it)."""

    def __init__(self, thinking: bool = False) -> None:
        self._state = "thinking" if thinking else "start"  # start -> thinking -> answer, or start -> answer
        self._held = ""
        self._strip = True  # whitespace that opens the thinking or the answer belongs to neither

    @property
    def thinking(self) -> bool:
        return self._state == "thinking"

    def feed(self, text: str) -> list[Piece]:
        if self._state == "answer" and not self._strip:
            return [("content", text)] if text else []
        self._held += text
        out: list[Piece] = []
        if self._state == "start":
            head = self._held.lstrip()
            if head.startswith(OPEN):
                self._state, self._held = "thinking", head[len(OPEN):]
            elif OPEN.startswith(head):  # whitespace so far, or the tag still arriving
                return out
            else:
                self._state, self._strip = "answer", False
        if self._state == "thinking":
            if self._strip:
                self._held = self._held.lstrip()
                if not self._held:
                    return out
                self._strip = False
            end = self._held.find(CLOSE)
            if end < 0:
                # Hold back what may be the closing tag arriving, and the newlines before it.
                keep = tail_prefix(self._held, CLOSE)
                cut = len(self._held[:len(self._held) - keep].rstrip())
                if cut:
                    out.append(("reasoning", self._held[:cut]))
                self._held = self._held[cut:]
                return out
            if self._held[:end].rstrip():
                out.append(("reasoning", self._held[:end].rstrip()))
            self._state, self._held, self._strip = "answer", self._held[end + len(CLOSE):], True
        if self._strip:
            self._held = self._held.lstrip()
            if not self._held:
                return out
            self._strip = False
        if self._held:
            out.append(("content", self._held))
        self._held = ""
        return out

    def finish(self) -> list[Piece]:
        """The reply ended: release what was held (an unclosed think block is all reasoning)."""
        held, self._held = self._held, ""
        if not held or not held.strip() and (self._strip or self._state == "thinking"):
            return []
        if self._state == "thinking":
            return [("reasoning", held)]
        return [("content", held)]


def split(text: str, thinking: bool = False) -> tuple[str | None, str]:
    """A whole reply -> (its thinking or None, its answer)."""
    splitter = ReasoningSplitter(thinking)
    pieces = splitter.feed(text) + splitter.finish()
    reasoning = "".join(t for kind, t in pieces if kind == "reasoning")
    content = "".join(t for kind, t in pieces if kind == "content")
    had_block = thinking or text.lstrip().startswith(OPEN)
    return (reasoning if had_block else None), content
