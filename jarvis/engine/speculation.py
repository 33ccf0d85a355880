"""Prompt-lookup speculation: when to draft, how much, and what a verified draft teaches.

A greedy slot decoding alone sends its pending token plus tokens guessed from n-grams already in
its prompt and answer (jarvis/engine/lookup.py), each with logits, in the same llama_decode; the
engine keeps the prefix the model agrees with. On a CPU a decode costs a fixed part plus a part
per token with logits that grows about linearly: several slots already share the fixed part, so
only a slot decoding alone drafts, and only likely drafts pay (README, Performance).
"""

from __future__ import annotations

from jarvis.engine.lookup import draft as lookup_draft
from jarvis.engine.sequence import SeqState, Slot

MIN_DRAFT = 2  # a one-token draft costs about a whole decode on a CPU: never worth it
DRAFT_PAUSE = 4  # steps without drafts after a draft the model rejected outright


class DraftPolicy:
    def __init__(self, max_draft: int, allowed: bool) -> None:
        self.max_draft = max_draft
        self.allowed = allowed and max_draft > 0  # recurrent and hybrid memories never draft
        self.drafted_tokens = 0  # sent to llama_decode to be verified
        self.accepted_tokens = 0  # of which the model agreed with (kept)

    def may_draft(self, generating: int) -> bool:
        """Only a slot decoding alone drafts."""
        return self.allowed and generating == 1

    def draft(self, slot: Slot, seq: SeqState, n_ctx_seq: int) -> list[int]:
        """Tokens guessed from the prompt and answer so far, for a slot whose choice is the
        argmax (greedy, no grammar, no logprobs), within its max_tokens and context."""
        request = seq.request
        if request.sampling.temperature > 0 or request.options.grammar is not None or request.options.logprobs:
            return []
        if seq.draft_pause > 0:
            seq.draft_pause -= 1
            return []
        room = min(seq.draft_len, self.max_draft, request.sampling.max_tokens - seq.completion_tokens - 1,
                   n_ctx_seq - len(slot.tokens) - 2)
        drafted = lookup_draft(slot.tokens, room) if room >= MIN_DRAFT else []
        self.drafted_tokens += len(drafted)
        return drafted

    def verified(self, seq: SeqState, drafted: int, agreed: int) -> None:
        """The next draft's length: a copy that held gets longer, a miss halves it and pauses
        drafting a few steps. Drafts are right in long runs or not at all, and on a CPU each
        drafted position costs most of a decode: only likely ones pay."""
        self.accepted_tokens += agreed
        if agreed == drafted:
            seq.draft_len = min(self.max_draft, 2 * drafted)
        elif agreed == 0:
            seq.draft_len = max(MIN_DRAFT, drafted // 2)
            seq.draft_pause = DRAFT_PAUSE
