"""The engine's cheaper hot path, proven by construction on the real model's vocabulary:
the token tables equal llama.cpp's own answers, a batch filled through numpy views equals one
filled token by token, and a sampler chain with the top-k cut before the penalties picks what
the exact order picks (the same logits, the same machine, so equality here is exact)."""

from __future__ import annotations

import ctypes

import llama_cpp as ll
import numpy as np
import pytest

from jarvis.engine.grammar import TOKEN_DATA
from jarvis.engine.handles import PENALTY_LAST_N, Batch, LlamaContext, LlamaModel, SamplerChain, penalties_first
from jarvis.sampling import SamplingParams


@pytest.fixture(scope="module")
def model(model_path):
    m = LlamaModel(model_path)
    yield m
    m.close()


def piece(model, token: int, special: bool) -> bytes:
    """llama.cpp's own answer, asked directly (what the model's table must equal)."""
    buf = ctypes.create_string_buffer(256)
    n = ll.llama_token_to_piece(model.vocab, token, buf, len(buf), 0, special)
    assert n >= 0, "a piece longer than 256 bytes"
    return buf.raw[:n]


def test_token_tables_equal_llama_cpp(model):
    assert len(model.eog_ids) >= 1 and model.eos_id in model.eog_ids
    for t in range(model.n_vocab):
        assert model.token_bytes(t) == piece(model, t, False)
        assert model.is_eog(t) == bool(ll.llama_vocab_is_eog(model.vocab, t))
    # special pieces still come from llama.cpp (the template reads them), and out-of-range ids too
    assert model.token_text(model.eos_id) == piece(model, model.eos_id, True).decode()


def _fill_one_by_one(batch: Batch, runs):
    for tokens, first_pos, seq_id, last in runs:
        for j, t in enumerate(tokens):
            batch.add(t, first_pos + j, seq_id, last and j == len(tokens) - 1)


def _fill_runs(batch: Batch, runs):
    for tokens, first_pos, seq_id, last in runs:
        batch.add_run(tokens, first_pos, seq_id, last)


def _raw(batch: Batch):
    n = len(batch)
    r = batch.raw
    return ([r.token[i] for i in range(n)], [r.pos[i] for i in range(n)], [r.n_seq_id[i] for i in range(n)],
            [r.seq_id[i][0] for i in range(n)], [bool(r.logits[i]) for i in range(n)])


def test_batch_runs_equal_token_by_token_and_decode_the_same(model):
    toks = model.tokenize("Write a short paragraph about owls, then one about rivers.")
    runs = [(toks, 0, 0, True), (toks[:5], 0, 1, False), ([7], 12, 2, True)]
    ctx = LlamaContext(model, 3, 256, 64, 1)
    a, b = Batch(64), Batch(64)
    try:
        _fill_one_by_one(a, runs)
        _fill_runs(b, runs)
        assert len(a) == len(b) == len(toks) + 6
        assert _raw(a) == _raw(b)  # what llama.cpp reads through the raw struct
        # the same batch shape decoded twice from an empty memory: the same logits, bit for bit
        out = []
        for batch in (a, b):
            ll.llama_memory_clear(ctx.memory, True)
            assert ctx.decode(batch) == 0
            out.append(np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx.ptr, len(toks) - 1),
                                             shape=(model.n_vocab,)).copy())
        assert np.array_equal(out[0], out[1])
        b.clear()
        assert len(b) == 0 and b.raw.n_tokens == 0
        with pytest.raises(OverflowError):
            b.add_run(list(range(65)), 0, 0, True)
    finally:
        a.close()
        b.close()  # puts llama_batch_init's seq_id arrays back: freeing ours would abort
        ctx.close()


@pytest.mark.parametrize("values, first", [
    (dict(temperature=0, repeat_penalty=1.1), False),
    (dict(temperature=0.7, top_k=40, repeat_penalty=1.1, presence_penalty=0.5, frequency_penalty=0.2), False),
    (dict(temperature=0.7, top_k=0, repeat_penalty=1.1), True),  # no top-k: nothing to cut at
    (dict(temperature=0, repeat_penalty=0.9), True),  # raises logits: exact order
    (dict(temperature=0.7, top_k=40, presence_penalty=-0.5), True),
    (dict(temperature=0, frequency_penalty=-0.1), True),
])
def test_penalties_first_only_where_the_cut_could_change_the_result(values, first):
    assert penalties_first(SamplingParams(**values)) is first


def _exact_chain(model, sp: SamplingParams, seed: int):
    """The old order, always: penalties over the whole vocabulary first."""
    p = ll.llama_sampler_chain_default_params()
    ch = ll.llama_sampler_chain_init(p)
    ll.llama_sampler_chain_add(ch, ll.llama_sampler_init_penalties(model.n_vocab, PENALTY_LAST_N, sp.repeat_penalty,
                                                                   sp.frequency_penalty, sp.presence_penalty))
    if sp.temperature <= 0:
        ll.llama_sampler_chain_add(ch, ll.llama_sampler_init_greedy())
        return ch
    ll.llama_sampler_chain_add(ch, ll.llama_sampler_init_top_k(sp.top_k))
    ll.llama_sampler_chain_add(ch, ll.llama_sampler_init_top_p(sp.top_p, 1))
    ll.llama_sampler_chain_add(ch, ll.llama_sampler_init_min_p(sp.min_p, 1))
    ll.llama_sampler_chain_add(ch, ll.llama_sampler_init_temp(sp.temperature))
    ll.llama_sampler_chain_add(ch, ll.llama_sampler_init_dist(seed))
    return ch


def _pick(chain_ptr, logits: np.ndarray, cells: np.ndarray) -> int:
    cells["id"] = np.arange(len(logits), dtype=np.int32)
    cells["logit"] = logits
    cells["p"] = 0.0
    arr = ll.llama_token_data_array(cells.ctypes.data_as(ll.llama_token_data_p), len(logits), -1, False)
    ll.llama_sampler_apply(chain_ptr, ctypes.byref(arr))
    return int(arr.data[arr.selected].id)


@pytest.mark.parametrize("values", [
    dict(temperature=0, repeat_penalty=1.1),
    dict(temperature=0, repeat_penalty=1.5, frequency_penalty=0.5, presence_penalty=0.5),
    dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.3, presence_penalty=1.0),
])
def test_cut_before_penalties_picks_what_the_exact_order_picks(model, values):
    """Adversarial logits: the penalised history holds the very leaders, so without the wider
    cut (k + 64) the penalties would push tokens from outside a plain top-k into the result."""
    sp = SamplingParams(**values)
    assert not penalties_first(sp)
    fast, exact = SamplerChain(model, sp, seed=7), _exact_chain(model, sp, seed=7)
    assert fast.order[:2] == [f"top_k({(sp.top_k if sp.temperature > 0 else 1) + PENALTY_LAST_N})", "penalties"]
    rng = np.random.default_rng(1)
    cells = np.zeros(model.n_vocab, dtype=TOKEN_DATA)
    differing_from_raw_argmax = 0
    try:
        for step in range(300):
            logits = rng.normal(0, 3, model.n_vocab).astype(np.float32)
            leaders = np.argsort(logits)[::-1]
            if step % 2 == 0:  # make the 64 likeliest tokens the recently repeated ones
                history = leaders[:PENALTY_LAST_N]
            else:
                history = rng.choice(leaders[:200], PENALTY_LAST_N)
            for t in history:
                ll.llama_sampler_accept(fast.ptr, int(t))
                ll.llama_sampler_accept(exact, int(t))
            a, b = _pick(fast.ptr, logits, cells), _pick(exact, logits, cells)
            assert a == b, step
            differing_from_raw_argmax += a != int(leaders[0])
    finally:
        fast.close()
        ll.llama_sampler_free(exact)
    assert differing_from_raw_argmax > 20  # the penalties really changed the choice, often


def test_default_threads_are_one_per_physical_core_and_an_explicit_count_is_used_as_given(settings):
    """engine.n_threads = 0 gives llama.cpp one thread per physical core it may use (cores.py,
    where the counting itself is tested); an explicit value is used as given."""
    from jarvis.engine.config import auto_threads
    from jarvis.engine.cores import compute_core_count

    assert auto_threads() == compute_core_count() >= 1 and auto_threads(16) == 16
    import asyncio

    from jarvis.assistant import Assistant

    async def run(n):
        a = Assistant(settings.model_copy(update={"engine": settings.engine.model_copy(update={"n_threads": n})}))
        try:
            await a.catalog.ready()  # the first scan (Assistant() no longer scans)
            await a.manager.load(a.default_model())
            return a.manager.engine_of(a.default_model()).threads
        finally:
            await a.close()

    assert asyncio.run(run(0)) == compute_core_count()
    assert asyncio.run(run(1)) == 1


def test_plain_greedy_reads_the_argmax_and_picks_what_llama_cpps_greedy_sampler_picks(model):
    """A chain that is greedy alone takes numpy's argmax of the logits row instead of
    llama_sampler_sample: the same token at every step of a real decode, ties included (both
    take the first largest logit)."""
    plain = SamplerChain(model, SamplingParams(temperature=0, repeat_penalty=1.0), seed=1)
    penalised = SamplerChain(model, SamplingParams(temperature=0, repeat_penalty=1.1), seed=1)
    assert plain.argmax_only and not penalised.argmax_only
    reference = ll.llama_sampler_init_greedy()
    ctx, batch = LlamaContext(model, 1, 512, 64, 1), Batch(64)
    try:
        tokens = model.tokenize("The three primary colours are")
        batch.add_run(tokens, 0, 0, True)
        assert ctx.decode(batch) == 0
        for step in range(24):
            picked = plain.sample(ctx, len(batch) - 1)
            assert picked == ll.llama_sampler_sample(reference, ctx.ptr, len(batch) - 1), step
            batch.clear()
            batch.add(picked, len(tokens) + step, 0, True)
            assert ctx.decode(batch) == 0
        row = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx.ptr, 0), shape=(model.n_vocab,))
        row[:] = 0.0
        row[[7, 300]] = 5.0  # a tie: both pick the first
        assert plain.sample(ctx, 0) == ll.llama_sampler_sample(reference, ctx.ptr, 0) == 7
    finally:
        ll.llama_sampler_free(reference)
        plain.close()
        penalised.close()
        batch.close()
        ctx.close()


def test_logits_rows_are_llama_cpps_rows_for_every_batch_shape(model):
    """The greedy pick reads a step's logits through one llama_get_logits per decode (a view of
    llama.cpp's buffer, rows in batch order) instead of one llama_get_logits_ith per slot: for a
    batch that mixes a prompt chunk (logits on its last token only), a drafted run (logits on every
    token) and a plain next token, each row is the very row llama_get_logits_ith points at, and a
    later decode with fewer rows reads that decode's rows, not the old view's."""
    ctx, batch = LlamaContext(model, 3, 256, 64, 1), Batch(64)
    try:
        prompt = model.tokenize("The three primary colours are")
        for seq in range(3):  # every sequence starts with the prompt
            batch.add_run(prompt, 0, seq, True)
            assert ctx.decode(batch) == 0
            batch.clear()
        n = len(prompt)
        extra = model.tokenize(" red, yellow and blue", add_special=False)
        wanted = [batch.add_run(extra, n, 0, True)]  # a chunk: logits on its last token
        last = batch.add_run([extra[0], extra[1], extra[2]], n, 1, True, logits_all=True)  # a draft run
        wanted += [last - 2, last - 1, last]
        wanted.append(batch.add(extra[0], n, 2, True))  # one next token
        assert batch.n_outputs == 5 and ctx.decode(batch) == 0
        for index in wanted:
            row = ctx.logits_row(index)
            reference = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx.ptr, index), shape=(model.n_vocab,))
            assert row.ctypes.data == reference.ctypes.data, index  # the same memory, not a copy
            assert np.array_equal(row, reference)
        batch.clear()
        batch.add(extra[1], n + 1, 2, True)
        assert ctx.decode(batch) == 0
        reference = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx.ptr, 0), shape=(model.n_vocab,))
        assert ctx.logits_row(0).ctypes.data == reference.ctypes.data
        assert int(ctx.logits_row(0).argmax()) == int(reference.argmax())
    finally:
        batch.close()
        ctx.close()
