"""Run `jarvis serve` with its llama_decode calls timed: the engine worker's gap between two
decodes (its Python per step: sampling, text hand-over, planning, the loop's wake-up) apart from
the decodes themselves. `serve_profile --gaps` launches each tree's server through this file.

    python path/to/decode_gaps.py serve --host 127.0.0.1 --port N    # JARVIS_BENCH_GAPS_FILE=out.json

At exit it writes JSON to $JARVIS_BENCH_GAPS_FILE: medians and 90th percentiles, in ms, of the gaps
between consecutive decodes (a gap over 50 ms is the engine idle, not a step) and of the decodes,
both over every step and over one-token steps only (one stream decoding). Wall time on the worker
thread, so it reads the critical path; use it with CPU counters (serve_profile) on a noisy machine.
Run as a file rather than a module so that an older tree on PYTHONPATH can be timed as well.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import statistics
import sys
import time
from pathlib import Path

IDLE_MS = 50.0


def summary(calls: list[tuple[float, float, int]]) -> dict:
    """calls: (start, end, batch tokens) of each decode, in order."""
    gaps, decodes, gaps_1, decodes_1 = [], [], [], []
    for (_, end, _), (start, stop, width) in zip(calls, calls[1:]):
        gap = (start - end) * 1000
        if gap > IDLE_MS:
            continue
        gaps.append(gap)
        decodes.append((stop - start) * 1000)
        if width == 1:
            gaps_1.append(gap)
            decodes_1.append((stop - start) * 1000)

    def stats(values: list[float]) -> dict:
        if not values:
            return {"n": 0}
        s = sorted(values)
        return {"n": len(s), "median": round(statistics.median(s), 4), "p90": round(s[int(0.9 * (len(s) - 1))], 4)}

    return {"gap_ms": stats(gaps), "decode_ms": stats(decodes), "gap_ms_one_token": stats(gaps_1),
            "decode_ms_one_token": stats(decodes_1)}


def run_serve() -> None:
    """jarvis serve (argv as after `jarvis`), its decodes timed; not a suite: serve_profile --gaps runs it."""
    from jarvis.engine import handles

    calls: list[tuple[float, float, int]] = []
    real_decode = handles.LlamaContext.decode
    clock = time.perf_counter

    def decode(self, batch):
        start = clock()
        rc = real_decode(self, batch)
        calls.append((start, clock(), len(batch)))
        return rc

    handles.LlamaContext.decode = decode
    out = os.environ.get("JARVIS_BENCH_GAPS_FILE", "")
    if out:
        atexit.register(lambda: Path(out).write_text(json.dumps(summary(calls))))
    sys.argv = ["jarvis", *sys.argv[1:]]
    runpy.run_module("jarvis", run_name="__main__")


if __name__ == "__main__":
    run_serve()
