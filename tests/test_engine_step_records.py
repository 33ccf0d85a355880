"""The engine reports its steps as StepRecords when its occupancy changes (and every
RECORD_INTERVAL_S while it does not), not once per llama_decode: the monitor's gauges still see
every change of busy slots and queue, and the records' counts add up to every step the engine ran.
Proven by counting, never by timing."""

from __future__ import annotations

from jarvis.engine import step_tally
from jarvis.engine.scheduler import StepPlan
from jarvis.engine.step_tally import StepTally
from jarvis.telemetry import StepRecord

from tests.support.assistant_loop import PROMPTS, with_assistant


def plan(decode: int, prefill: int, draft: int) -> StepPlan:
    return StepPlan(decode_tokens=decode, prefill_tokens=prefill, draft_tokens=draft)


def test_a_tally_sends_on_a_change_of_occupancy_or_after_the_interval_with_the_sums_since_the_last():
    tally = StepTally("m")
    first = tally.add(plan(0, 10, 0), 5.0, active_slots=1, queue_depth=0, now=100.0)
    assert (first.steps, first.prefill_tokens, first.active_slots) == (1, 10, 1)  # the first step is a change
    assert tally.add(plan(1, 0, 0), 2.0, 1, 0, now=100.01) is None  # same occupancy, within the interval
    assert tally.add(plan(1, 0, 2), 4.0, 1, 0, now=100.02) is None
    busier = tally.add(plan(2, 0, 0), 3.0, active_slots=2, queue_depth=1, now=100.03)
    assert (busier.steps, busier.batch_tokens, busier.decode_tokens, busier.draft_tokens) == (3, 6, 4, 2)
    assert (busier.step_ms, busier.widest_decode, busier.queue_depth) == (9.0, 2, 1)
    assert tally.add(plan(2, 0, 0), 3.0, 2, 1, now=100.03 + step_tally.RECORD_INTERVAL_S / 2) is None
    late = tally.add(plan(2, 0, 0), 3.0, 2, 1, now=100.03 + step_tally.RECORD_INTERVAL_S)
    assert (late.steps, late.decode_tokens) == (2, 4)  # a busy engine still reports while nothing changes


def test_the_records_of_a_real_request_add_up_to_its_steps_and_show_its_slot_taken_then_freed(settings, monkeypatch):
    monkeypatch.setattr(step_tally, "RECORD_INTERVAL_S", 1e9)  # only changes of occupancy send a record

    async def body(a):
        await a.catalog.ready()
        loaded = await a.manager.load(a.default_model())
        engine = loaded.engine
        records: list[StepRecord] = []
        unsubscribe = a.bus.subscribe(lambda r: records.append(r) if isinstance(r, StepRecord) else None)
        real_decode, decodes = engine._ctx.decode, []

        def decode(batch):
            decodes.append(len(batch))
            return real_decode(batch)

        engine._ctx.decode = decode
        try:
            reply = await a.chat(a.request(PROMPTS[0], temperature=0, max_tokens=24, use_cache=False))
        finally:
            engine._ctx.decode = real_decode
            unsubscribe()
        return records, decodes, reply

    records, decodes, reply = with_assistant(settings, body)
    assert len(decodes) >= 10 and reply.text
    assert [(r.active_slots, r.queue_depth) for r in records] == [(1, 0), (0, 0)]  # taken, freed: 2, not one per step
    assert sum(r.steps for r in records) == len(decodes)
    assert sum(r.batch_tokens for r in records) == sum(decodes)
    assert sum(r.prefill_tokens + r.decode_tokens + r.draft_tokens for r in records) == sum(decodes)
    assert max(r.widest_decode for r in records) == 1  # one stream: one generating slot per step

