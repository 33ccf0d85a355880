"""`python -m bench.reliability [--quick] [--scale X]`: every scenario, one table, one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench.reliability.http_fuzz import http_fuzz
from bench.reliability.load import cancel_storm, overload, soak, unload_under_load
from bench.reliability.models import header_mutations, hostile_models, mutants_through_llama_cpp
from bench.reliability.result import Result
from bench.reliability.serve_leak import serve_leak
from bench.reliability.storage import kill9_conversations, unwritable_data_dir
from bench.support.settings import make_settings

LONG = {"truncations": 200, "mutations": 500, "llama_mutants": 40, "overload": 200, "overload_queue": 64, "storm": 500, "storm_normal": 60,
        "unload_rounds": 3, "soak": 1000, "kill9": 20, "http": 1000, "serve": 1000}
QUICK = {"truncations": 20, "mutations": 50, "llama_mutants": 5, "overload": 60, "overload_queue": 16, "storm": 60, "storm_normal": 12,
         "unload_rounds": 1, "soak": 200, "kill9": 5, "http": 100, "serve": 300}


def sizes(quick: bool, scale: float) -> dict:
    base = QUICK if quick else LONG
    return {k: v if k == "overload_queue" else max(1, round(v * scale)) for k, v in base.items()}


async def _async_part(work: Path, settings, n: dict) -> list[Result]:
    out = []
    out.append(await hostile_models(work / "h", settings, n_truncations=n["truncations"]))
    out.append(await overload(settings, n=n["overload"], max_queue=n["overload_queue"]))
    out.append(await cancel_storm(settings, n_cancel=n["storm"], n_normal=n["storm_normal"]))
    out.append(await unload_under_load(settings, work / "m", rounds=n["unload_rounds"]))
    out.append(await soak(settings, n=n["soak"]))
    out.append(await unwritable_data_dir(work, settings))
    return out


def main(argv: list[str] | None = None) -> int:
    import logging

    p = argparse.ArgumentParser(prog="bench.reliability")
    p.add_argument("--quick", action="store_true", help="the short versions (what the tests run)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every count (e.g. 0.3 on a machine shared with other LLM jobs)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    # llama.cpp refusing the corpus and aiohttp refusing malformed requests: by design, not news.
    for name in ("jarvis.llama", "aiohttp.server", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jarvis-reliability-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        settings = make_settings(work / "data", JARVIS_ENGINE_CONTEXT_LENGTH="512")
        n = sizes(args.quick, args.scale)
        results = [header_mutations(work, n["mutations"]), mutants_through_llama_cpp(work, n["llama_mutants"])]
        results += asyncio.run(_async_part(work, settings, n))
        results.append(kill9_conversations(work, rounds=n["kill9"]))
        results.append(http_fuzz(settings, n=n["http"]))
    results.append(serve_leak(n=max(n["serve"], 300)))  # RSS from request 200 on: fewer says nothing
    print(f"{'scenario':<40} {'tried':>6} {'faults':>7} {'handled':>8} {'lost':>5} {'crashes':>8}")
    for r in results:
        print(f"{r.scenario:<40} {r.tried:>6} {r.faults:>7} {r.handled:>8} {r.lost:>5} {r.crashes:>8}")
    for r in results:
        if r.notes:
            print(f"  {r.scenario}: {json.dumps(r.notes)}")
        for problem in r.problems[:10]:
            print(f"  PROBLEM {r.scenario}: {problem}")
    print(json.dumps({"elapsed_s": round(time.perf_counter() - started, 1), "sizes": n,
                      "results": [{k: v for k, v in asdict(r).items()} for r in results]}))
    return 0 if not any(r.problems for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
