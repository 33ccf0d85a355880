"""What an answer is while it streams, and the words shown under it when it is done."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from jarvis.http.answer import AnswerParser
from jarvis.request import ChatRequest, QueuePosition, RequestRecord

from ui.chat.message_widget import MessageWidget


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def waiting_line(queue: QueuePosition, since: float, now: float | None = None) -> str:
    """'waiting: 2nd in line, about 3 s' (the estimate counts down from when it came)."""
    line = f"waiting: {ordinal(queue.position)} in line"
    if queue.eta_s is not None:
        left = max(1.0, queue.eta_s - ((time.monotonic() if now is None else now) - since))
        line += f", about {left:.0f} s"
    return line


@dataclass(eq=False)
class Answer:
    """One answer being generated for one conversation. `widget` is None while its conversation
    is not the one on screen; the text keeps accumulating and is saved when it ends."""

    conversation_id: int
    request: ChatRequest
    model: str
    text: str = ""  # the answer, without the thinking
    thinking: str = ""  # a reasoning model's thinking (its `<think>` block, or a remote's reasoning)
    parser: AnswerParser = field(default_factory=AnswerParser, repr=False)  # splits the two as they stream
    record: RequestRecord | None = None  # the finished request's record, from the last chunk
    widget: MessageWidget | None = None
    task: asyncio.Task | None = field(default=None, repr=False)
    first_token: bool = False
    chunks: int = 0  # text chunks received
    queue: QueuePosition | None = None  # where it waits for a slot, until its first token
    queue_since: float = 0.0  # monotonic time that position came
    queue_positions: list[int] = field(default_factory=list)  # every position it was told, in order
    tool_rounds: int = 0  # rounds in which the model called tools (the stats line counts them)
    tool_ms: float = 0.0  # the calls' own time
    tool_log: list[dict] = field(default_factory=list)  # each call's outcome, stored with the answer
