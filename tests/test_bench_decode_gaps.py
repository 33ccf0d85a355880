"""serve_profile --gaps (jarvis/bench/decode_gaps.py): the worker's gap between two llama_decode
calls is read from their start and end times, idle stretches are not steps, and one-token steps
(one stream decoding) are told apart. Synthetic times: the arithmetic, not a machine, is tested."""

from __future__ import annotations

from jarvis.bench.decode_gaps import IDLE_MS, summary


def test_gaps_are_between_one_decodes_end_and_the_next_ones_start_and_idle_is_left_out():
    ms = 0.001
    calls = [(0.0, 6 * ms, 20),  # a prefill
             (6.3 * ms, 12.3 * ms, 1), (12.5 * ms, 18.5 * ms, 1),  # gaps 0.3 and 0.2 ms
             (18.5 * ms + (IDLE_MS + 1) * ms, 18.5 * ms + (IDLE_MS + 8) * ms, 4)]  # after an idle spell
    s = summary(calls)
    assert s["gap_ms"]["n"] == 2 and abs(s["gap_ms"]["median"] - 0.25) < 1e-6
    assert s["decode_ms_one_token"]["n"] == 2 and abs(s["decode_ms_one_token"]["median"] - 6.0) < 1e-6
    assert summary(calls[:1]) == {k: {"n": 0} for k in ("gap_ms", "decode_ms", "gap_ms_one_token", "decode_ms_one_token")}
