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


def test_a_serve_profile_variant_names_its_settings_and_a_malformed_one_is_refused():
    import pytest

    from jarvis.bench.serve_profile import parse_variant

    assert parse_variant("si12:JARVIS_ENGINE_STREAM_INTERVAL_MS=12,JARVIS_ENGINE_WORKER_NICE=0") == (
        "si12", {"JARVIS_ENGINE_STREAM_INTERVAL_MS": "12", "JARVIS_ENGINE_WORKER_NICE": "0"})
    for bad in ("si12", "si12:", ":A=1", "si12:A", "si12:=1"):
        with pytest.raises(ValueError, match="NAME:KEY=VALUE"):
            parse_variant(bad)
