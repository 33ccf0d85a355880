"""What an answer is while it streams, and the words shown under it when it is done."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from jarvis.cache import cached_words
from jarvis.request import ChatRequest, QueuePosition, RequestRecord

from ui.chat.message_widget import MessageWidget


def stats_line(model: str, t: RequestRecord | None, status: str = "complete") -> str:
    """model · N tokens · X tok/s · TTFT Y ms · cached | warm | cold start (load N ms) [· JSON | tool call]."""
    if t is None:
        return f"{model} · stopped before the first token" if status == "stopped" else model
    start = cached_words(t) if t.cache_hit else "warm" if t.warm_start else f"cold start (load {t.model_load_ms:.0f} ms)"
    parts = [model or t.model, f"{t.completion_tokens} tokens", f"{t.decode_tokens_per_s:.1f} tok/s",
             f"TTFT {t.ttft_ms:.0f} ms", start]
    if t.constrained:  # the output was held to a grammar
        parts.append(t.constrained)
    if t.backend != "local":  # a remote model: which remote, and the server's own figures when it sent any
        from jarvis.remote.figures import server_figures

        parts.append(f"via {t.backend}")
        if own := server_figures(t.server_timings):
            parts.append(own)
    if status == "stopped":
        parts.append("stopped")
    return " · ".join(parts)


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
    text: str = ""
    record: RequestRecord | None = None  # the finished request's record, from the last chunk
    widget: MessageWidget | None = None
    task: asyncio.Task | None = field(default=None, repr=False)
    first_token: bool = False
    chunks: int = 0  # text chunks received
    queue: QueuePosition | None = None  # where it waits for a slot, until its first token
    queue_since: float = 0.0  # monotonic time that position came
    queue_positions: list[int] = field(default_factory=list)  # every position it was told, in order
