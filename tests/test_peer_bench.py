"""`jarvis bench --peer`: the comparison's machinery against real loopback servers (a short load;
the speed figures themselves live in the bench, never in a test)."""

from __future__ import annotations

import asyncio

from jarvis.bench.peer_bench import EDIT_PROMPTS, PROMPTS, compare, run_load
from jarvis.cli import build_parser

from bench.support.server import ServerThread


def test_compare_two_servers_counts_tokens_and_texts(settings):
    """Two JARVIS servers of the same settings: the same greedy texts, every ratio present,
    the reference last; tokens are the servers' own usage counts."""
    settings = settings.model_copy(update={"cache": settings.cache.model_copy(update={"enabled": False})})
    with ServerThread(settings) as a, ServerThread(settings) as b:
        res = asyncio.run(compare({"jarvis": (a.url, {"cache": False}), "peer": (b.url, {"cache": False})},
                                  levels=[1, 2], rounds=1, max_tokens=4))
        one = asyncio.run(run_load(a.url, 2, 4, {"cache": False}, prompts=EDIT_PROMPTS[:3]))
    assert set(res["ratios"]) == {"jarvis_c2_vs_c1", "peer_c2_vs_c1", "jarvis_vs_peer_c1", "jarvis_vs_peer_c2"}
    assert res["identical_texts_jarvis_peer"] == f"{2 * len(PROMPTS)}/{2 * len(PROMPTS)}"
    assert res["self_consistent_jarvis"] == "2/2"
    assert all(len(t) > 0 for t in res["texts"]["jarvis"])
    assert one.tokens == 3 * 4 and len(one.texts) == 3 and all(one.texts)


def test_cli_passes_the_peer_options_through():
    args = build_parser().parse_args(["bench", "--peer", "http://127.0.0.1:8080", "--rounds", "5", "--",
                                      "--variant", "t2:JARVIS_ENGINE_N_THREADS=2", "--prompts", "edit"])
    assert (args.peer, args.rounds) == ("http://127.0.0.1:8080", 5)
    assert args.peer_args == ["--variant", "t2:JARVIS_ENGINE_N_THREADS=2", "--prompts", "edit"]
