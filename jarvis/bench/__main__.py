"""`jarvis bench [--quick] [--json]` (`--suite engine`, the default; also `python -m jarvis.bench`): the
engine tables, with targets from the engine issue. Every other suite: jarvis/bench/suites.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

TARGETS = [  # key, description, passes(value)
    ("parallel4_vs_serial_tok_s_ratio", "4 parallel: aggregate decode tok/s vs batch_size=1", lambda v: v >= 1.6, ">= 1.6"),
    ("single_vs_raw_tok_s_ratio", "single request tok/s vs raw llama-cpp-python", lambda v: v >= 0.95, ">= 0.95"),
    ("turn2_ttft_vs_cold_ratio", "chat turn 2 TTFT vs cold", lambda v: v <= 0.30, "<= 0.30"),
    ("loop_max_lag_ms", "event-loop max lateness, 4 streams (ms)", lambda v: v < 50, "< 50"),
    ("cache_hit_p99_ms", "cache hit end-to-end P99 (ms)", lambda v: v < 2, "< 2"),
    # jarvis/bench/remote_bench.py: through JARVIS vs the openai client straight to llama_cpp.server
    ("remote_vs_direct_tok_s_ratio", "remote: tok/s through JARVIS vs direct", lambda v: v >= 0.95, ">= 0.95"),
    ("remote_added_latency_ms", "remote: added latency per request (ms)", lambda v: v <= 5, "<= 5"),
]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a.startswith(("--peer", "--baseline-env")) for a in argv):  # side by side (jarvis/bench/peer_bench.py)
        from jarvis.bench.peer_bench import main as peer_main

        return peer_main(argv)
    p = argparse.ArgumentParser(prog="jarvis bench")
    p.add_argument("--quick", action="store_true", help="a shorter run, under a minute")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    from jarvis.bench.engine_bench import run_all

    results = asyncio.run(run_all(args.quick))
    from jarvis.bench import remote_bench

    results.update(remote_bench.run(args.quick))  # {} without llama-cpp-python's [server] extra
    if args.json:
        print(json.dumps(results, default=float))
        return 0
    print(f"{'figure':<50} {'measured':>10} {'target':>8}  ok")
    for key, label, ok, target in TARGETS:
        if key not in results:
            print(f"{label:<50} {'skipped':>10} {target:>8}  (needs llama-cpp-python[server])")
            continue
        value = results[key]
        print(f"{label:<50} {value:>10.3f} {target:>8}  {'yes' if ok(value) else 'NO'}")
    print()
    for key in ("raw_batch4_vs_1_ratio", "parallel4_ratio_vs_raw_ceiling", "parallel4_vs_serial_wall_tok_s_ratio", "single_tok_s", "raw_tok_s", "single_ttft_ms", "parallel4_tok_s", "serial4_tok_s",
                "turn2_history_tokens", "turn2_cached_tokens", "turn2_ttft_ms", "cold_ttft_ms", "cache_hit_p50_ms",
                "cache_cold_ms"):
        print(f"{key:<50} {results[key]:>10.2f}")
    for name in ("parallel4", "serial4", "parallel10", "serial10"):
        if name in results:
            r = results[name]
            print(f"{name:<12} {r['tok_s']:7.1f} tok/s wall  {r['decode_tok_s']:7.1f} decode tok/s  P50 {r['p50_ms']:7.0f} ms  P95 {r['p95_ms']:7.0f} ms  "
                  f"P99 {r['p99_ms']:7.0f} ms")
    print("\n" + json.dumps(results, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
