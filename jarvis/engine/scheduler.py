"""One step's plan: which tokens of which slots go into the next llama_decode.

The next token of every generating slot first (running answers never wait on prompts; a greedy
slot decoding alone adds its draft), then prompt chunks, oldest admission first, within what is
left of the batch and at most `prefill_chunk` tokens. The plan says where each slot's logits land.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jarvis.engine.handles import Batch
from jarvis.engine.sequence import Slot
from jarvis.engine.speculation import DraftPolicy


@dataclass
class StepPlan:
    wants_logits: list[tuple[Slot, int]] = field(default_factory=list)  # (slot, its logits' index in the batch)
    decode_tokens: int = 0  # one per generating slot
    prefill_tokens: int = 0
    draft_tokens: int = 0  # guesses verified in this step besides decode_tokens


def plan_step(slots: list[Slot], batch: Batch, prefill_chunk: int, drafts: DraftPolicy, n_ctx_seq: int) -> StepPlan:
    """Fill `batch` (cleared first) for the next decode; an empty batch means nothing to do."""
    batch.clear()
    plan = StepPlan()
    generating: list[Slot] = []
    prefilling: list[Slot] = []
    for slot in slots:  # one pass: this runs on the critical path of every step
        seq = slot.sequence
        if seq is None:
            continue
        if seq.pending_token is not None:
            generating.append(slot)
        elif seq.prefilling:
            prefilling.append(slot)
    may_draft = drafts.may_draft(len(generating))
    for slot in generating:
        seq = slot.sequence
        pos = len(slot.tokens)
        slot.tokens.append(seq.pending_token)
        seq.pending_token = None
        drafted = drafts.draft(slot, seq, n_ctx_seq) if may_draft else []
        if drafted:
            idx = batch.add_run([slot.tokens[-1], *drafted], pos, slot.seq_id, True, logits_all=True)
            idx -= len(drafted)
            slot.tokens.extend(drafted)
            seq.draft, seq.draft_pos = drafted, pos
        else:
            idx = batch.add(slot.tokens[-1], pos, slot.seq_id, True)
        plan.wants_logits.append((slot, idx))
        plan.decode_tokens += 1
        plan.draft_tokens += len(drafted)
    if not prefilling:
        return plan
    budget = min(batch.capacity - len(batch), prefill_chunk)
    for slot in sorted(prefilling, key=lambda s: s.sequence.admitted_at):
        if budget <= 0:
            break
        seq = slot.sequence
        take = min(budget, len(seq.prompt) - seq.prefilled)
        chunk = seq.prompt[seq.prefilled:seq.prefilled + take]
        last = seq.prefilled + take == len(seq.prompt)
        idx = batch.add_run(chunk, seq.prefilled, slot.seq_id, last)
        if last:
            plan.wants_logits.append((slot, idx))
        slot.tokens.extend(chunk)
        seq.prefilled += take
        budget -= take
        plan.prefill_tokens += take
    return plan
