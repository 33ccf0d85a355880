"""State of one request inside the engine, and of the slots that run them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from jarvis.engine.mailbox import Mailbox
from jarvis.engine.text import StreamingText
from jarvis.engine.thinking import ThinkingBudget
from jarvis.request import ChatRequest, Timings


@dataclass(eq=False)
class SeqState:
    """One request inside the engine, from submission to its last token (a llama.cpp "sequence"
    while it holds a slot). The worker thread owns every field except `cancelled`, which the
    asyncio side may set at any time."""

    request: ChatRequest
    mailbox: Mailbox
    deadline: float | None  # perf_counter time after which it fails with RequestTimeout
    submitted_at: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    queue_position: int = 0  # place in line at submission (1 = next); 0 = a slot was free

    # set when a slot takes it
    prompt: list[int] = field(default_factory=list)
    prefilled: int = 0  # prompt tokens already in the KV cache (reused ones included)
    cached_tokens: int = 0
    dropped_turns: int = 0
    sampler: object = None
    decoder: StreamingText | None = None  # token bytes -> releasable text, stop strings held back
    thinking: ThinkingBudget | None = None  # its think block: counted, and ended at its budget
    pending_token: int | None = None  # sampled, to be decoded in the next step
    draft: list[int] = field(default_factory=list)  # prompt-lookup guesses in this step's batch, after the pending token
    draft_pos: int = 0  # the pending token's position in this step (the drafts follow it)
    draft_hits: int = 0  # draft tokens the model agreed with, for this sequence's acceptance rate
    draft_misses: int = 0  # drafts that ended on a disagreement
    draft_pause: int = 0  # steps left without drafting, after a draft rejected outright
    completion_tokens: int = 0
    admitted_at: float = 0.0
    first_token_at: float = 0.0
    last_token_at: float = 0.0
    token_gaps_ms: list[float] = field(default_factory=list)

    @property
    def prefilling(self) -> bool:
        return self.prefilled < len(self.prompt)

    def token_at(self, now: float) -> None:
        """A token was sampled for it at `now` (perf_counter): first-token time and token gaps."""
        if self.first_token_at == 0.0:
            self.first_token_at = now
        else:
            self.token_gaps_ms.append((now - self.last_token_at) * 1000)
        self.last_token_at = now

    def timings(self, finish_reason: str) -> Timings:
        """What the engine measured of this request, in the neutral terms every backend reports."""
        grammar = self.request.options.grammar
        return Timings(finish_reason=finish_reason, submitted_at=self.submitted_at, admitted_at=self.admitted_at,
                       first_token_at=self.first_token_at, last_token_at=self.last_token_at,
                       queue_position=self.queue_position, prompt_tokens=len(self.prompt),
                       cached_prompt_tokens=self.cached_tokens, completion_tokens=self.completion_tokens,
                       dropped_turns=self.dropped_turns, inter_token_ms=tuple(self.token_gaps_ms),
                       constrained=grammar.label if grammar else "",
                       reasoning_tokens=self.thinking.tokens if self.thinking else 0,
                       stop_sequence=self.decoder.matched if self.decoder else "")


@dataclass(eq=False)
class Slot:
    """One llama.cpp sequence id. `tokens` is exactly what its KV cells hold, kept after a
    request ends so the next request with the same prefix (a chat's next turn) skips it."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    sequence: SeqState | None = None

    @property
    def free(self) -> bool:
        return self.sequence is None


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two token sequences (lists or numpy arrays) share: one vectorised
    comparison, so a 2,000-token history costs microseconds, not a Python loop per token."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if len(differ) else n
