"""What running the engine's threads below the window costs it (engine.worker_nice). Not a test.

    .venv/bin/python -m bench.engine_priority [--nice 5] [--rounds 3] [--busy 0]

The bundled model, alternating in one run: an engine at worker_nice 0, then one at `--nice`,
`--rounds` times; each answers 4 greedy prompts at once (max_tokens each) after a warm-up, and
the aggregate decode tok/s (completion tokens over the wall time of the 4) and the process's CPU
time per token are kept. Reported: the ratio nice/0 of each, per round (median and range). tok/s
is what the user gets; CPU per token is what the priority costs the engine's own work, which
other processes on a shared machine do not disturb. `--busy N` keeps N cores busy meanwhile (processes of this
session: with Linux's autogroups, nice weighs threads against the same session's only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

from jarvis.catalog import bundled_model_path
from jarvis.engine import Engine, EngineConfig
from jarvis.request import ChatRequest, Message
from jarvis.sampling import SamplingParams

PROMPTS = ["Write a short story about a robot.", "Explain how rain forms.", "Describe a busy market.",
           "Tell me about the moon."]


async def _answer(engine: Engine, prompt: str, max_tokens: int) -> int:
    seq = engine.submit(ChatRequest(messages=(Message("user", prompt),),
                                    sampling=SamplingParams(max_tokens=max_tokens, temperature=0)))
    async for _ in engine.stream(seq):
        pass
    return seq.completion_tokens


def _cpu_s() -> float:
    """This process's CPU time, all threads (the engine's and llama.cpp's workers: nothing else runs)."""
    t = os.times()
    return t.user + t.system


async def _four(engine: Engine, max_tokens: int) -> tuple[float, float]:
    """(tok/s, CPU ms per token) of 4 greedy answers at once."""
    t0, c0 = time.perf_counter(), _cpu_s()
    tokens = sum(await asyncio.gather(*(_answer(engine, p, max_tokens) for p in PROMPTS)))
    return tokens / (time.perf_counter() - t0), (_cpu_s() - c0) * 1000 / max(1, tokens)


def measure(nice: int, max_tokens: int) -> tuple[float, float]:
    engine = Engine("bench", bundled_model_path(), config=EngineConfig(worker_nice=nice, lookup_draft=0, request_timeout_s=0))
    engine.load()
    try:
        asyncio.run(_four(engine, 8))  # warm-up: llama.cpp's threads start, caches fill
        return asyncio.run(_four(engine, max_tokens))
    finally:
        engine.close()


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (range {min(values):.3f}-{max(values):.3f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nice", type=int, default=5, help="the worker_nice compared with 0")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--busy", type=int, default=0, help="processes that each keep one core busy meanwhile")
    args = p.parse_args(argv)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    tok_ratio, cpu_ratio = [], []
    load = [os.getloadavg()[0]]
    try:
        for r in range(args.rounds):
            got: dict[int, tuple[float, float]] = {}
            for nice in (0, args.nice) if r % 2 == 0 else (args.nice, 0):  # ABBA: drift hits both alike
                got[nice] = measure(nice, args.max_tokens)
                print(f"round {r + 1}: worker_nice {nice:2d}  {got[nice][0]:7.1f} tok/s  "
                      f"{got[nice][1]:6.2f} CPU ms/token (4 streams)", flush=True)
            tok_ratio.append(got[args.nice][0] / got[0][0])
            cpu_ratio.append(got[args.nice][1] / got[0][1])
            load.append(os.getloadavg()[0])
            print(f"round {r + 1}: ratio nice {args.nice}/0  tok/s {tok_ratio[-1]:.3f}  CPU per token {cpu_ratio[-1]:.3f}",
                  flush=True)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    print(f"\nworker_nice {args.nice} vs 0, 4 streams x {args.max_tokens} tokens, {args.rounds} rounds, "
          f"{args.busy} core(s) kept busy, load average {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores:")
    print(f"  tok/s ratio            {_spread(tok_ratio)}   (under 1: slower; on a shared machine the lowered "
          f"engine also yields to other processes)")
    print(f"  CPU per token ratio    {_spread(cpu_ratio)}   (over 1: more work per token; the robust figure)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
