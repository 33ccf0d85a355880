"""`jarvis bench --peer`: the comparison's machinery against real loopback servers (a short load;
the speed figures themselves live in the bench, never in a test)."""

from __future__ import annotations

import asyncio
import math

import pytest

from jarvis.bench.peer_bench import (EDIT_PROMPTS, PROMPTS, SAMPLING, compare, long_prompt, peer_env, ratio_summary,
                                     run_load, verdict)
from jarvis.cli import build_parser

from bench.support.server import ServerThread


def test_compare_two_servers_counts_tokens_and_texts(settings):
    """Two JARVIS servers of the same settings: the same greedy texts, every ratio present,
    the reference last; tokens are the servers' own usage counts."""
    settings = settings.model_copy(update={"cache": settings.cache.model_copy(update={"enabled": False})})
    with ServerThread(settings) as a, ServerThread(settings) as b:
        res = asyncio.run(compare({"jarvis": (a.url, {"cache": False}), "peer": (b.url, {"cache": False})},
                                  levels=[1, 2], rounds=1, max_tokens=4, long_prompt_case=False))
        one = asyncio.run(run_load(a.url, 2, 4, {"cache": False}, prompts=EDIT_PROMPTS[:3]))
        whole = asyncio.run(run_load(a.url, 2, 4, {"cache": False}, prompts=EDIT_PROMPTS[:3], stream=False))
        turns = asyncio.run(compare({"jarvis": (a.url, {"cache": False}), "peer": (b.url, {"cache": False})},
                                    levels=[2], rounds=1, max_tokens=4, long_prompt_case=False, interleave=True))
    # Taking turns two prompts at a time: the same replies, in prompt order, as whole loads.
    assert turns["interleave"] and turns["texts"] == {n: res["texts"][n] for n in ("jarvis", "peer")}
    assert turns["identical_texts_jarvis_peer"] == f"{len(PROMPTS)}/{len(PROMPTS)}"
    assert set(res["ratios"]) == {"jarvis_c2_vs_c1", "peer_c2_vs_c1", "jarvis_vs_peer_c1", "jarvis_vs_peer_c2"}
    assert res["identical_texts_jarvis_peer"] == f"{2 * len(PROMPTS)}/{2 * len(PROMPTS)}"
    assert res["identical_token_counts_jarvis_peer"] == f"{2 * len(PROMPTS)}/{2 * len(PROMPTS)}"
    assert res["sampling"] == SAMPLING and len(res["loadavg_1min_at_rounds"]) == 1
    assert res["self_consistent_jarvis"] == "2/2"
    # Every reply's length, per round and prompt (max_tokens 4: a load's tail is visible in them)
    assert res["reply_tokens"]["jarvis"]["c2"] == [[4] * len(PROMPTS)] == res["reply_tokens"]["peer"]["c1"]
    assert all(len(t) > 0 for t in res["texts"]["jarvis"])
    assert one.tokens == 3 * 4 and len(one.texts) == 3 and all(one.texts)
    # --whole: the same replies and usage, taken as one JSON answer each
    assert (whole.tokens, whole.texts, whole.counts) == (one.tokens, one.texts, one.counts)


def test_cli_passes_the_peer_options_through():
    args = build_parser().parse_args(["bench", "--peer", "http://127.0.0.1:8080", "--rounds", "5", "--",
                                      "--variant", "t2:JARVIS_ENGINE_N_THREADS=2", "--prompts", "edit"])
    assert (args.peer, args.rounds) == ("http://127.0.0.1:8080", 5)
    assert args.peer_args == ["--variant", "t2:JARVIS_ENGINE_N_THREADS=2", "--prompts", "edit"]


def test_every_sampling_parameter_is_sent_explicitly_so_no_server_default_decides():
    assert set(SAMPLING) == {"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "presence_penalty",
                             "frequency_penalty", "seed"}


def test_the_long_prompt_is_fresh_from_its_first_line_each_round():
    """No server may reuse an earlier round's cached prefix: the rounds differ from the first line on."""
    first, second = long_prompt(0), long_prompt(1)
    assert first.splitlines()[0] != second.splitlines()[0]
    assert len(first.split()) > 1000 and first.endswith("Answer in two sentences.")


def test_the_peer_gets_jarvis_s_openmp_spin_or_libgomp_s_own(monkeypatch):
    import jarvis

    monkeypatch.setattr(jarvis, "SPIN_ENV", {"GOMP_SPINCOUNT": "1000"})
    monkeypatch.setenv("GOMP_SPINCOUNT", "1000")
    assert peer_env("jarvis")["GOMP_SPINCOUNT"] == "1000"
    assert "GOMP_SPINCOUNT" not in peer_env("default")


def test_a_variant_runs_its_own_tree_even_from_a_checkout(tmp_path):
    """`--variant before:PYTHONPATH=<tree>` and footprint's `--before`: the server started must be
    that tree's code. From a checkout's root, plain `python -m jarvis` imported the checkout's own
    jarvis/ (the working directory comes first on sys.path) whatever PYTHONPATH said."""
    import os
    import subprocess
    from pathlib import Path

    import jarvis
    from jarvis.bench.peer_bench import code_path, jarvis_serve_command

    tree = tmp_path / "before"
    (tree / "jarvis").mkdir(parents=True)
    (tree / "jarvis" / "__init__.py").write_text("")
    (tree / "jarvis" / "__main__.py").write_text("import sys; print('the tree before', sys.argv[1:3])")
    checkout = Path(jarvis.__file__).resolve().parent.parent
    ran = subprocess.run(jarvis_serve_command(0), env=code_path(dict(os.environ), str(tree)), cwd=checkout,
                         capture_output=True, text=True, timeout=60)
    assert ran.stdout.strip() == "the tree before ['serve', '--host']"
    ours = subprocess.run([*jarvis_serve_command(0)[:2], "-c", "import jarvis; print(jarvis.__file__)"],
                          env=code_path(dict(os.environ)), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert Path(ours.stdout.strip()).resolve() == Path(jarvis.__file__).resolve()


def test_interleaved_servers_take_turns_abba_slice_by_slice(monkeypatch):
    """--interleave: at concurrency N each server runs N prompts at a time, the servers taking
    turns A B B A ..., so a drift of the machine's speed meets both alike; each server's round adds
    up its slices, texts in prompt order."""
    from jarvis.bench import peer_bench

    calls = []

    async def fake_load(url, concurrency, max_tokens, extra, prompts, stream=True):
        calls.append((url, concurrency, tuple(prompts)))
        return peer_bench.LoadResult(len(prompts), 0.5, [f"{url}:{p}" for p in prompts], [1] * len(prompts))

    monkeypatch.setattr(peer_bench, "run_load", fake_load)
    prompts = [f"p{i}" for i in range(8)]
    servers = {"a": ("A", {}), "b": ("B", {})}
    got = asyncio.run(peer_bench.run_level(servers, ["a", "b"], 2, 4, prompts, interleave=True))
    assert [(u, p) for u, _, p in calls] == [("A", ("p0", "p1")), ("B", ("p0", "p1")), ("B", ("p2", "p3")),
                                             ("A", ("p2", "p3")), ("A", ("p4", "p5")), ("B", ("p4", "p5")),
                                             ("B", ("p6", "p7")), ("A", ("p6", "p7"))]
    assert all(c == 2 for _, c, _ in calls)
    assert got["a"].tokens == 8 and got["a"].wall_s == 2.0 and got["a"].texts == [f"A:{p}" for p in prompts]
    calls.clear()
    whole = asyncio.run(peer_bench.run_level(servers, ["b", "a"], 4, 4, prompts, interleave=False))
    assert [(u, len(p)) for u, _, p in calls] == [("B", 8), ("A", 8)] and whole["b"].counts == [1] * 8


def test_a_variant_names_its_settings_and_a_malformed_one_is_refused():
    """--variant of the peer bench and of serve_profile (one parser for both)."""
    import pytest

    from jarvis.bench.peer_bench import parse_variant

    assert parse_variant("si12:JARVIS_ENGINE_STREAM_INTERVAL_MS=12,JARVIS_ENGINE_WORKER_NICE=0") == (
        "si12", {"JARVIS_ENGINE_STREAM_INTERVAL_MS": "12", "JARVIS_ENGINE_WORKER_NICE": "0"})
    for bad in ("si12", "si12:", ":A=1", "si12:A", "si12:=1"):
        with pytest.raises(ValueError, match="NAME:KEY=VALUE"):
            parse_variant(bad)


def test_a_ratio_carries_its_geometric_mean_and_95_percent_interval():
    """Per-round ratios 1.1 and 1/1.1 average to parity in logs; the interval is the t-interval of
    the logs (t = 12.706 for two rounds), so parity is inside it."""
    r = ratio_summary([1.1, 1 / 1.1])
    assert r["geomean"] == 1.0 and r["median"] == pytest.approx(1.005, abs=1e-3)
    half = 12.706 * math.log(1.1) * math.sqrt(2) / math.sqrt(2)  # stdev of (+l, -l) is l * sqrt(2)
    assert r["ci95"] == [round(math.exp(-half), 3), round(math.exp(half), 3)]
    assert "ci95" not in ratio_summary([1.02])  # one round: no interval


def test_the_target_verdict_reads_the_interval_not_the_median():
    """A median above 1.0 is not a met target while the interval still holds 1.0; a run whose whole
    interval lies above (or below) it is."""
    above = ratio_summary([1.03, 1.04, 1.05, 1.04, 1.03, 1.05])
    noisy = ratio_summary([1.10, 0.92, 1.08, 0.95, 1.06, 0.97])
    below = ratio_summary([0.95, 0.96, 0.94, 0.95, 0.96, 0.95])
    assert verdict(above, 1.0).startswith("target >= 1.0: yes")
    assert noisy["median"] > 1.0 and "not told apart" in verdict(noisy, 1.0)
    assert verdict(below, 1.0).startswith("target >= 1.0: NO")

