"""A reply's think block, followed token by token: how many tokens the model spent thinking, and
the end of the thinking when a per-request budget runs out.

Reasoning models open their reply with `<think>` and answer after `</think>` (jarvis.reasoning
splits the text for the API surfaces). The engine hands every token it takes to the sequence's
ThinkingBudget; while the reply is inside the block and has spent its budget, `forced()` names the
next token of `</think>` (or of what is missing of it, when the model had begun to close), which
the engine takes instead of sampling. Then the answer follows, sampled as usual. A reply that
does not open with `<think>` costs one byte comparison per token until that is known.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from jarvis.reasoning import CLOSE, OPEN, tail_prefix

_OPEN, _CLOSE = OPEN.encode(), CLOSE.encode()


class CloseTags:
    """The tokens of `</think>` for one model, and of each tail of it, tokenized once each."""

    def __init__(self, tokenize: Callable[[str], list[int]]) -> None:
        self._tokenize = tokenize
        self._rest: dict[int, list[int]] = {}

    def rest(self, typed: int) -> list[int]:
        """The tokens that finish `</think>` when its first `typed` characters are already there."""
        if typed not in self._rest:
            self._rest[typed] = self._tokenize(CLOSE[typed:])
        return self._rest[typed]


class ThinkingBudget:
    """One sequence's think block. `budget` None: only counted; 0: closed as soon as it opens."""

    def __init__(self, budget: int | None, tags: CloseTags) -> None:
        self.budget = budget
        self.tokens = 0  # thinking tokens so far (the tags not counted)
        self._tags = tags
        self._state = "start"  # start -> thinking -> done, or start -> done (no think block)
        self._head = b""  # the reply's bytes until it is known whether it thinks
        self._thought = b""  # the last bytes of the thinking: a closing tag may arrive across tokens
        self._length = 0  # bytes of thinking so far
        self._starts: deque[int] = deque(maxlen=len(_CLOSE))  # where the last counted tokens began
        self._handed: int | None = None  # the token forced() named, until it is taken

    @property
    def thinking(self) -> bool:
        return self._state == "thinking"

    def forced(self) -> int | None:
        """The token to take instead of sampling, or None to sample."""
        if self._state != "thinking" or self.budget is None or self.tokens < self.budget:
            return None
        typed = tail_prefix(self._thought.decode("utf-8", "ignore"), CLOSE)
        rest = self._tags.rest(typed)
        self._handed = rest[0] if rest else None
        return self._handed

    def took(self, token: int, piece: bytes) -> None:
        """The engine took `token` (sampled or forced), whose text is `piece`."""
        handed, self._handed = self._handed, None
        if self._state == "start":
            self._head += piece
            head = self._head.lstrip()
            if head.startswith(_OPEN):
                self._state = "thinking"
                piece = head[len(_OPEN):]  # what came with the tag is thinking, in no token of its own
                if not piece:
                    return
                token = handed = -1
            elif _OPEN.startswith(head):
                return
            else:
                self._state, self._head = "done", b""
                return
        if self._state != "thinking":
            return
        if token != handed:
            self._starts.append(self._length)
            self.tokens += 1
        self._length += len(piece)
        self._thought = (self._thought + piece)[-4 * len(_CLOSE):]
        at = self._thought.find(_CLOSE)
        if at >= 0:  # closed: tokens that began inside the tag were the tag, not thinking
            tag_at = self._length - len(self._thought) + at
            self.tokens -= sum(1 for s in self._starts if s >= tag_at)
            self._state = "done"
