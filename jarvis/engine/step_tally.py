"""The engine's steps, counted between two StepRecords.

A StepRecord per llama_decode went to six subscribers (the monitor's gauges, Prometheus, the
request log, ...), and on the worker, right after a decode has flushed the CPU caches, that fan-out
took ~60 us of every step: about 1 % of a token at one stream on a small CPU, spent where nothing
else can run. The gauges need the occupancy (slots busy, requests queued), which changes a few
times per request, not per token; the benches need the token and time totals. So the worker adds
each step here and sends one record when the occupancy changes, or every RECORD_INTERVAL_S while
it stays the same.
"""

from __future__ import annotations

from jarvis.engine.scheduler import StepPlan
from jarvis.telemetry import StepRecord

RECORD_INTERVAL_S = 0.25


class StepTally:
    def __init__(self, model: str) -> None:
        self.model = model
        self._occupancy: tuple[int, int] | None = None
        self._since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.steps = self.decode_tokens = self.prefill_tokens = self.draft_tokens = self.widest_decode = 0
        self.step_ms = 0.0

    def add(self, plan: StepPlan, step_ms: float, active_slots: int, queue_depth: int, now: float) -> StepRecord | None:
        """Count one step (its plan: what went into the batch); returns the record to send when
        one is due (else None)."""
        self.steps += 1
        self.decode_tokens += plan.decode_tokens
        self.prefill_tokens += plan.prefill_tokens
        self.draft_tokens += plan.draft_tokens
        self.step_ms += step_ms
        if plan.decode_tokens > self.widest_decode:
            self.widest_decode = plan.decode_tokens
        occupancy = (active_slots, queue_depth)
        if occupancy == self._occupancy and now - self._since < RECORD_INTERVAL_S:
            return None
        batch_tokens = self.decode_tokens + self.prefill_tokens + self.draft_tokens  # a batch holds just these
        record = StepRecord(self.model, active_slots, queue_depth, batch_tokens, self.decode_tokens,
                            self.prefill_tokens, self.step_ms, draft_tokens=self.draft_tokens, steps=self.steps,
                            widest_decode=self.widest_decode)
        self._occupancy, self._since = occupancy, now
        self._reset()
        return record
