"""The draft policy's arithmetic (jarvis/engine/speculation.py), with given cost curves and counts:
a draft is sent only where its expected tokens per unit of decode cost beat one token a step."""

from __future__ import annotations

import pytest

from jarvis.engine.speculation import DecodeCost, DraftPolicy, expected_accepted


def measured(points: dict[int, float]) -> DecodeCost:
    cost = DecodeCost()
    for width, ms in points.items():
        cost.observe(width, ms)
    return cost


def test_decode_cost_averages_each_width_and_reads_unseen_widths_off_the_line():
    cost = measured({1: 6.0, 3: 16.0})
    assert cost.ratio(3) == pytest.approx(16.0 / 6.0)
    assert cost.ms(5) == pytest.approx(26.0)  # 1 ms fixed + 5 ms per token
    cost.observe(1, 8.0)  # a moving average: one slow step moves it a little
    assert 6.0 < cost.ms(1) < 7.0


def test_before_two_widths_are_seen_the_prior_is_hopeful_so_the_first_drafts_measure():
    assert DecodeCost().ratio(5) == pytest.approx(1.4)
    assert measured({1: 6.0}).ratio(5) == pytest.approx(1.4)


def test_a_noisy_line_never_makes_a_wider_batch_cheaper():
    cost = measured({1: 6.0, 2: 5.0})
    assert cost.ratio(8) == 1.0


def test_expected_accepted_is_the_agreeing_prefix():
    assert expected_accepted(0.5, 3) == pytest.approx(0.5 + 0.25 + 0.125)
    assert expected_accepted(0.9, 0) == 0


def test_on_a_cpu_curve_only_near_certain_copies_draft_on_a_gpu_curve_most_do():
    cpu = DraftPolicy(8, allowed=True, cost=measured({1: 6.0, 3: 16.0, 5: 25.0}))
    gpu = DraftPolicy(8, allowed=True, cost=measured({1: 6.0, 4: 6.3, 9: 6.8}))
    assert cpu.best_length(0.5, 8) == 0
    assert cpu.best_length(0.8, 8) == 0
    assert cpu.best_length(0.98, 8) > 0
    assert gpu.best_length(0.5, 8) > 0
    assert gpu.best_length(0.98, 8) == 8


class Seq:
    draft_hits = draft_misses = draft_pause = 0


def test_acceptance_starts_from_the_engines_counts_and_follows_the_sequences_own():
    policy = DraftPolicy(8, allowed=True)
    fresh = Seq()
    assert policy.acceptance(fresh) == pytest.approx(0.5)
    copying = Seq()
    for _ in range(5):
        policy.verified(copying, drafted=8, agreed=8)
    assert policy.acceptance(copying) > 0.9
    assert policy.acceptance(Seq()) > 0.9  # a new sequence starts from the engine's record
    prose = Seq()
    for _ in range(10):
        policy.verified(prose, drafted=4, agreed=0)
    assert prose.draft_pause > 0
    assert policy.acceptance(prose) < 0.3


def test_where_no_draft_pays_the_lookup_is_skipped_and_asked_again_after_a_pause(monkeypatch):
    from types import SimpleNamespace

    from jarvis.engine import speculation
    from jarvis.request_options import RequestOptions
    from jarvis.sampling import SamplingParams

    lookups = []
    monkeypatch.setattr(speculation, "lookup_draft", lambda tokens, room: lookups.append(room) or [7] * room)
    request = SimpleNamespace(sampling=SamplingParams(temperature=0, max_tokens=1000), options=RequestOptions())
    slot = SimpleNamespace(tokens=list(range(100)))

    def steps(policy, n):
        seq = SimpleNamespace(request=request, completion_tokens=0, draft_hits=0, draft_misses=0, draft_pause=0)
        return [policy.draft(slot, seq, 4096) for _ in range(n)]

    cpu = DraftPolicy(8, allowed=True, cost=measured({1: 6.0, 3: 16.0, 5: 25.0}))
    assert steps(cpu, 3 * (speculation.COST_PAUSE + 1)) == [[]] * 27
    assert lookups == []  # the cost said no three times; the n-grams were never searched
    gpu = DraftPolicy(8, allowed=True, cost=measured({1: 6.0, 4: 6.3, 9: 6.8}))
    drafts = steps(gpu, 3)
    assert len(lookups) == 3 and all(drafts)  # where drafts pay, every step looks one up
