"""step_profile (jarvis/bench/step_profile.py): reading the decode probes' events as `perf script`
prints them, pairing each entry with its return, and one load's decodes and gaps from its window."""

import pytest

from jarvis.bench.step_profile import GROUP, Probe, load_stats, pair_decodes, parse_events, summarise

SCRIPT = f"""\
  5580  1000.000000: {GROUP}:exit_jarvis__return:
  5580  1000.010000: {GROUP}:enter_jarvis:
  5580  1000.030000: {GROUP}:exit_jarvis__return:
  5894  1000.031000: {GROUP}:enter_llama_server:
  5580  1000.030500: {GROUP}:enter_jarvis:
  5580  1000.050000: {GROUP}:exit_jarvis__return:
  5894  1000.052000: {GROUP}:exit_llama_server__return:
  5580  1000.051000: {GROUP}:enter_jarvis:
  5580  1000.070000: {GROUP}:exit_jarvis__return:
  5580  1000.090000: {GROUP}:enter_jarvis:
   777  1000.100000: probe_other:enter_jarvis:
"""


def test_events_are_read_per_process_in_time_order_and_other_groups_are_left_out():
    events = parse_events(SCRIPT)
    assert set(events) == {5580, 5894}  # not 777: its event is another group's
    assert events[5894] == [(1000.031, "enter"), (1000.052, "exit")]
    jarvis = events[5580]
    assert [t for t, _ in jarvis] == sorted(t for t, _ in jarvis)  # the 1000.0305 line came after 1000.03's
    assert len(jarvis) == 8


def test_a_decode_is_an_entry_and_the_return_after_it_and_lone_edges_are_dropped():
    decodes = pair_decodes(parse_events(SCRIPT)[5580])
    # the leading return (its entry was before the recording) and the trailing entry are dropped
    assert decodes == [(1000.01, 1000.03), (1000.0305, 1000.05), (1000.051, 1000.07)]


def test_a_loads_decodes_gaps_and_time_outside_llama_cpp_come_from_its_window():
    decodes = pair_decodes(parse_events(SCRIPT)[5580])
    stats = load_stats(decodes, 1000.005, 1000.08)
    assert stats["decodes"] == 3
    assert stats["decode_ms_median"] == pytest.approx(19.5)  # 20, 19.5, 19 ms
    assert stats["decode_ms_sum"] == pytest.approx(58.5)
    assert stats["gap_ms_median"] == pytest.approx(0.75)  # gaps of 0.5 and 1.0 ms
    assert stats["gap_ms_sum"] == pytest.approx(1.5)
    # 75 ms of wall time, 58.5 of them in decodes: 16.5 ms outside, over 3 decodes
    assert stats["outside_ms_per_decode"] == pytest.approx(5.5)
    narrow = load_stats(decodes, 1000.02, 1000.08)  # a decode that started before the window is not the load's
    assert narrow["decodes"] == 2
    assert load_stats(decodes, 2000.0, 2001.0) == {"decodes": 0}


def test_the_summary_is_the_median_of_each_figure_over_the_loads():
    loads = [{"decodes": 193, "gap_ms_median": 0.3, "tok_s": 150.0}, {"decodes": 193, "gap_ms_median": 0.5,
                                                                          "tok_s": 170.0},
             {"decodes": 194, "gap_ms_median": 0.4, "tok_s": 160.0}]
    assert summarise(loads) == {"decodes": 193, "gap_ms_median": 0.4, "tok_s": 160.0, "loads": 3}


def test_each_probe_names_its_entry_and_its_return_in_the_benchs_own_group():
    enter, leave = Probe("llama_server", "/x/llama-server", "llama_process").events()
    assert enter == f"{GROUP}:enter_llama_server=llama_process"
    assert leave == f"{GROUP}:exit_llama_server=llama_process%return"
