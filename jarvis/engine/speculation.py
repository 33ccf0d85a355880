"""Prompt-lookup speculation: when to draft, how much, and what a verified draft teaches.

A greedy slot decoding alone sends its pending token plus tokens guessed from n-grams already in
its prompt and answer (jarvis/engine/lookup.py), each with logits, in the same llama_decode; the
engine keeps the prefix the model agrees with. Whether that pays depends on the machine: on a GPU
a decode of 9 tokens costs little more than one of 1, on a small CPU it costs nearly 9 times as
much (measured on the 2-core development machine: 1 token 6.1 ms, 3 tokens 16 ms, 5 tokens 25 ms),
and a draft of k tokens then wins only when nearly all of it is accepted. So the policy measures
rather than assumes: `DecodeCost` learns what a decode costs by batch width from the engine's own
decode-only steps, each sequence's acceptance rate is counted, and a draft is sent only where the
expected tokens per millisecond beat decoding one token a step (README, Performance).
"""

from __future__ import annotations

from jarvis.engine.lookup import draft as lookup_draft
from jarvis.engine.sequence import SeqState, Slot

DRAFT_PAUSE = 4  # steps without drafts after a draft the model rejected outright
COST_PAUSE = 8  # steps without asking again after the cost said no draft pays (a lookup and
# weighing a draft took ~30 us of each step at one stream on the 2-core machine, where drafts never pay)
MAX_ACCEPTANCE = 0.98  # an estimate is never certainty: a draft can always be wrong


class DecodeCost:
    """What a decode-only llama_decode (no prompt tokens) costs on this machine by batch width, as
    moving averages of the engine's own steps. A width not seen yet is read off the line through
    the widths seen (cost = fixed + per_token x width); before two widths are seen, PRIOR_SLOPE
    (a GPU's curve, on the hopeful side: the first drafts then measure the real one)."""

    ALPHA = 0.05  # each step's weight in the average: ~20 steps of memory, steady on a noisy machine
    PRIOR_SLOPE = 0.1  # per extra token, as a fraction of a one-token decode

    def __init__(self) -> None:
        self._ms: dict[int, float] = {}
        self._line: tuple[float, float, float] | None = None  # (mean width, mean ms, slope), until the next observe

    def observe(self, width: int, ms: float) -> None:
        if width <= 0 or ms <= 0:
            return
        old = self._ms.get(width)
        self._ms[width] = ms if old is None else old + self.ALPHA * (ms - old)
        self._line = None

    def ms(self, width: int) -> float | None:
        if width in self._ms:
            return self._ms[width]
        if len(self._ms) < 2:
            return None
        if self._line is None:  # fitted when a draft is weighed, not at every step's observe
            xs, ys = list(self._ms), list(self._ms.values())
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
            self._line = (mx, my, max(slope, 0.0))  # noise may tilt the line; a wider batch never costs less
        mx, my, slope = self._line
        return max(my + slope * (width - mx), 1e-6)

    def ratio(self, width: int) -> float:
        """cost(width) / cost(1)."""
        one, wide = self.ms(1), self.ms(width)
        if one is None or wide is None:
            return 1.0 + self.PRIOR_SLOPE * (width - 1)
        return max(wide / one, 1.0)


def expected_accepted(p: float, k: int) -> float:
    """Draft tokens kept of k, when each is right with probability p given the ones before it
    were (the verify pass keeps the agreeing prefix): p + p^2 + ... + p^k."""
    return sum(p ** i for i in range(1, k + 1))


class DraftPolicy:
    def __init__(self, max_draft: int, allowed: bool, cost: DecodeCost | None = None) -> None:
        self.max_draft = max_draft
        self.allowed = allowed and max_draft > 0  # recurrent and hybrid memories never draft
        self.cost = cost or DecodeCost()
        self.drafted_tokens = 0  # sent to llama_decode to be verified
        self.accepted_tokens = 0  # of which the model agreed with (kept)
        self.missed_drafts = 0  # drafts that ended on a disagreement

    def may_draft(self, generating: int) -> bool:
        """Only a slot decoding alone drafts (several slots already share a decode's fixed cost)."""
        return self.allowed and generating == 1

    def observe_decode(self, width: int, ms: float) -> None:
        """A decode-only step of `width` tokens took `ms` (the engine calls this after each)."""
        self.cost.observe(width, ms)

    def acceptance(self, seq: SeqState) -> float:
        """How likely the sequence's next draft token is right: its own counts, starting from the
        engine's (a rewrite keeps agreeing, free prose rarely does)."""
        engine_p = (self.accepted_tokens + 1) / (self.accepted_tokens + self.missed_drafts + 2)
        p = (seq.draft_hits + 2 * engine_p) / (seq.draft_hits + seq.draft_misses + 2)
        return min(p, MAX_ACCEPTANCE)

    def best_length(self, p: float, available: int) -> int:
        """The draft length (0 = none) with the most expected tokens per unit of decode cost;
        decoding one token a step scores 1."""
        best_k, best = 0, 1.0
        for k in range(1, available + 1):
            score = (1 + expected_accepted(p, k)) / self.cost.ratio(k + 1)
            if score > best:
                best_k, best = k, score
        return best_k

    def draft(self, slot: Slot, seq: SeqState, n_ctx_seq: int) -> list[int]:
        """Tokens guessed from the prompt and answer so far, for a slot whose choice is the
        argmax (greedy, no grammar, no logprobs), within its max_tokens and context, as many as
        pay on this machine at this sequence's acceptance rate."""
        request = seq.request
        if request.sampling.temperature > 0 or request.options.grammar is not None or request.options.logprobs:
            return []
        if seq.draft_pause > 0:
            seq.draft_pause -= 1
            return []
        room = min(self.max_draft, request.sampling.max_tokens - seq.completion_tokens - 1,
                   n_ctx_seq - len(slot.tokens) - 2)
        if room <= 0:
            return []
        p = self.acceptance(seq)
        length = self.best_length(p, room)
        if length == 0:  # no draft would pay here: skip the lookup, and ask again
            seq.draft_pause = COST_PAUSE  # in a few steps (costs and counts move slowly)
            return []
        found = lookup_draft(slot.tokens, room)
        if length > len(found):  # the best of fewer choices; within them, `length` is already the best
            length = self.best_length(p, len(found))
        drafted = found[:length]
        self.drafted_tokens += len(drafted)
        return drafted

    def verified(self, seq: SeqState, drafted: int, agreed: int) -> None:
        """Count what the model kept; a draft rejected outright pauses drafting a few steps
        (drafts are right in long runs or not at all)."""
        self.accepted_tokens += agreed
        seq.draft_hits += agreed
        if agreed < drafted:
            self.missed_drafts += 1
            seq.draft_misses += 1
        if agreed == 0:
            seq.draft_pause = DRAFT_PAUSE
