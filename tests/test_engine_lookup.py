"""Prompt-lookup speculation, proven by construction on the real model (no claim that text
decoded in different batch shapes is float-identical; the bench counts that).

- the drafter returns what followed the latest earlier occurrence of the longest tail n-gram;
- the verify pass keeps exactly the argmax of the logits it produced, up to the first
  disagreement with the draft (greedy, no penalties: the choice IS the argmax);
- a rejected draft leaves no KV cells behind: at every step each slot's cells are exactly its
  token list, and after the request too.
"""

from __future__ import annotations

import asyncio

import llama_cpp as ll
import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from jarvis.assistant import Assistant
from jarvis.engine.lookup import draft
from jarvis.engine.speculation import DecodeCost


class CurveCost(DecodeCost):
    """A decode cost curve given, not measured: what a GPU's (several tokens cost about what one
    does) or a small CPU's (each token costs a whole decode) would teach the engine. The engine's
    own measurements are ignored, so the policy's decisions follow the curve alone."""

    def __init__(self, fixed_ms: float, per_token_ms: float) -> None:
        super().__init__()
        self.fixed_ms, self.per_token_ms = fixed_ms, per_token_ms
        self.observed = 0

    def observe(self, width: int, ms: float) -> None:
        self.observed += 1

    def ms(self, width: int) -> float:
        return self.fixed_ms + self.per_token_ms * width


GPU_LIKE = dict(fixed_ms=5.0, per_token_ms=0.1)


def naive_draft(history, n_draft, ngram_max=4, ngram_min=3):
    for n in range(min(ngram_max, len(history) - 1), ngram_min - 1, -1):
        tail = history[-n:]
        for i in range(len(history) - n - 1, -1, -1):
            if history[i:i + n] == tail:
                return history[i + n:i + n + n_draft]
    return []


def test_draft_examples():
    two = dict(ngram_min=2)
    assert draft([5, 6, 7, 8, 5, 6], 3, **two) == [7, 8, 5]
    assert draft([5, 6, 7, 8, 5, 6], 3) == []  # by default a tail of 3 tokens at least must recur
    assert draft([4, 5, 6, 7, 8, 4, 5, 6], 3) == [7, 8, 4]
    assert draft([1, 2, 3, 1, 2], 5, **two) == [3, 1, 2]  # the continuation may run into the tail itself
    assert draft([9, 1, 2, 7, 1, 2, 8, 1, 2], 1, **two) == [8]  # the latest earlier occurrence wins
    assert draft([1, 2, 3, 4, 9, 3, 4, 0, 2, 3, 4], 2, **two) == [9, 3]  # the longest tail wins (2,3,4 over 3,4)
    assert draft([1, 2, 3, 4], 4, **two) == []  # nothing repeats
    assert draft([1, 1], 3, **two) == []  # too short to hold an earlier 2-gram
    assert draft([1, 2, 1, 2], 0, **two) == []
    # ids whose int32 bytes overlap a neighbour's: only matches on a token boundary count
    assert draft([0x0100, 0x02, 0x0201, 0x00, 0x0100, 0x02], 2, **two) == [0x0201, 0x00]
    assert draft([0x00010000, 0x0100, 0x01, 0x00010000], 2, **two) == []


@hsettings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 256, 257, 65537, 2**24, 49151]), max_size=40), st.integers(0, 9))
def test_draft_equals_the_naive_search(history, n):
    assert draft(history, n) == naive_draft(history, n)
    assert draft(history, n, ngram_min=2) == naive_draft(history, n, ngram_min=2)


COPY = ("Repeat this list exactly, once: apple, banana, cherry, date, elderberry, fig, grape, "
        "honeydew, kiwi, lemon, mango, nectarine, orange, papaya, quince.")


def kv_span(engine, seq_id):
    mem = engine._ctx.memory
    return ll.llama_memory_seq_pos_min(mem, seq_id), ll.llama_memory_seq_pos_max(mem, seq_id)


def test_verify_keeps_the_argmax_prefix_and_rejected_drafts_leave_no_cells(settings):
    settings = settings.model_copy(update={"engine": settings.engine.model_copy(
        update={"batch_size": 2, "lookup_draft": 6, "context_length": 1024})})  # 2 slots: the second request may take either
    steps = []  # per verify: (seq_id, pending position, draft, argmax at each verify index)
    invariant_checked = [0]
    eog: set[int] = set()

    def hook(engine):
        batch = engine._batch
        n = len(batch)
        for slot in engine._slots:
            seq = slot.sequence
            if seq is None or seq.prefilling:
                continue
            # every cell this slot holds is in its token list, drafts included, and nothing more
            assert kv_span(engine, slot.seq_id) == (0, len(slot.tokens) - 1)
            invariant_checked[0] += 1
            if seq.draft:
                where = np.flatnonzero((batch.seq[:n] == slot.seq_id) & (batch.pos[:n] == seq.draft_pos))
                idx = int(where[0])
                assert list(batch.token[idx + 1:idx + 1 + len(seq.draft)]) == seq.draft
                argmax = [int(np.ctypeslib.as_array(ll.llama_get_logits_ith(engine._ctx.ptr, idx + i),
                                                    shape=(engine._model.n_vocab,)).argmax())
                          for i in range(len(seq.draft) + 1)]
                steps.append((slot.seq_id, seq.draft_pos, list(seq.draft), argmax))

    async def body(a):
        await a.manager.load(a.default_model())
        engine = a.manager.engine_of(a.default_model())
        engine._drafts.cost = CurveCost(**GPU_LIKE)  # drafts pay: this test is about verifying them
        engine.step_hook = hook
        eog.update(engine._model.eog_ids)
        results = []  # per request, one after the other (only a slot decoding alone drafts):
        for text in (COPY, "Count from 1 to 30, separated by commas."):  # its verify steps, its slot's cells
            steps.clear()
            reply = await a.chat(a.request(text, temperature=0, repeat_penalty=1.0, max_tokens=80, use_cache=False))
            spans = {s.seq_id: (kv_span(engine, s.seq_id), list(s.tokens)) for s in engine._slots}
            results.append((reply, list(steps), spans))
        return engine, results

    async def run():
        a = Assistant(settings)
        try:
            await a.catalog.ready()  # the first scan: the body asks for the default model by name
            return await body(a)
        finally:
            await a.close()

    engine, results = asyncio.run(run())
    agreed_total = rejected = verified = drafted_total = 0
    for reply, steps_of, spans in results:
        assert reply.text
        for seq_id, pos, drafted, argmax in steps_of:
            verified += 1
            drafted_total += len(drafted)
            agreed = 0
            # an end-of-generation token ends the request even where the draft agreed with it
            while agreed < len(drafted) and argmax[agreed] == drafted[agreed] and argmax[agreed] not in eog:
                agreed += 1
            agreed_total += agreed
            rejected += agreed < len(drafted)
            tokens = spans[seq_id][1]
            emitted = argmax[:agreed + 1]  # what this step handed on: the agreeing drafts and one more
            kept = tokens[pos + 1:pos + 1 + len(emitted)]
            assert kept == emitted[:len(kept)]
        for seq_id, ((lo, hi), tokens) in spans.items():
            assert (lo, hi) == ((0, len(tokens) - 1) if tokens else (-1, -1))  # cells == tokens, nothing stale
    assert verified, "no draft was ever verified"
    assert engine.accepted_tokens == agreed_total > 0
    assert engine.drafted_tokens == drafted_total
    assert rejected > 0  # some drafts were wrong, and the invariant held through their removal
    assert invariant_checked[0] > verified


def test_lookup_off_sends_no_drafts(settings):
    settings = settings.model_copy(update={"engine": settings.engine.model_copy(update={"lookup_draft": 0})})

    async def run():
        a = Assistant(settings)
        try:
            await a.chat(a.request(COPY, temperature=0, max_tokens=40, use_cache=False))
            return a.manager.engine_of(a.default_model())
        finally:
            await a.close()

    engine = asyncio.run(run())
    assert engine.drafted_tokens == engine.accepted_tokens == 0


def test_sampled_requests_are_never_drafted(settings):
    """Speculation here is exact only for the argmax; a sampled request decodes one token a step."""
    async def run():
        a = Assistant(settings)
        try:
            await a.chat(a.request(COPY, temperature=0.7, seed=3, max_tokens=40, use_cache=False))
            return a.manager.engine_of(a.default_model())
        finally:
            await a.close()

    engine = asyncio.run(run())
    assert engine.drafted_tokens == 0


def test_drafts_are_sent_only_where_this_machines_decode_cost_pays_for_them(settings):
    """The same copy-heavy request (its answer repeats its prompt: lookup finds drafts), once with
    a decode cost that grows with every token and has no fixed part (a draft of k costs k + 1
    decodes: it can never pay) and once with a GPU's curve. Proven by counts: no draft at all on
    the first, drafts on the second, the same reply from both."""
    async def run(cost):
        a = Assistant(settings)
        try:
            await a.catalog.ready()
            await a.manager.load(a.default_model())
            engine = a.manager.engine_of(a.default_model())
            engine._drafts.cost = cost
            reply = await a.chat(a.request(COPY, temperature=0, repeat_penalty=1.0, max_tokens=60, use_cache=False))
            return reply.text, engine.drafted_tokens
        finally:
            await a.close()

    linear, gpu = CurveCost(fixed_ms=0.0, per_token_ms=6.0), CurveCost(**GPU_LIKE)
    text_cpu, drafted_cpu = asyncio.run(run(linear))
    text_gpu, drafted_gpu = asyncio.run(run(gpu))
    assert drafted_cpu == 0 and drafted_gpu > 0
    assert linear.observed > 0  # the engine reported its decode-only steps to the policy
    assert text_cpu and text_gpu


def test_the_engine_learns_its_decode_cost_from_its_own_steps(settings):
    async def run():
        a = Assistant(settings)
        try:
            await a.chat(a.request("Name two fruits.", temperature=0, max_tokens=12, use_cache=False))
            return a.manager.engine_of(a.default_model())._drafts.cost
        finally:
            await a.close()

    cost = asyncio.run(run())
    assert cost.ms(1) is not None and cost.ms(1) > 0  # one-token decodes were timed
