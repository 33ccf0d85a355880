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

import time

from jarvis.telemetry import StepRecord

RECORD_INTERVAL_S = 0.25


class StepTally:
    def __init__(self, model: str) -> None:
        self.model = model
        self._occupancy: tuple[int, int] | None = None
        self._since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.steps = self.batch_tokens = self.decode_tokens = self.prefill_tokens = self.draft_tokens = 0
        self.widest_decode = 0
        self.step_ms = 0.0

    def add(self, batch_tokens: int, decode_tokens: int, prefill_tokens: int, draft_tokens: int, step_ms: float,
            active_slots: int, queue_depth: int, now: float) -> StepRecord | None:
        """Count one step; returns the record to send when one is due (else None)."""
        self.steps += 1
        self.batch_tokens += batch_tokens
        self.decode_tokens += decode_tokens
        self.prefill_tokens += prefill_tokens
        self.draft_tokens += draft_tokens
        self.step_ms += step_ms
        if decode_tokens > self.widest_decode:
            self.widest_decode = decode_tokens
        occupancy = (active_slots, queue_depth)
        if occupancy == self._occupancy and now - self._since < RECORD_INTERVAL_S:
            return None
        record = StepRecord(self.model, active_slots, queue_depth, self.batch_tokens, self.decode_tokens,
                            self.prefill_tokens, self.step_ms, draft_tokens=self.draft_tokens, steps=self.steps,
                            widest_decode=self.widest_decode)
        self._occupancy, self._since = occupancy, now
        self._reset()
        return record
