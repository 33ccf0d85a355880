"""What running the engine's threads below the window costs it (engine.worker_nice). Not a test.

    .venv/bin/python -m bench.engine_priority [--nice 5] [--rounds 3] [--busy 0]

The bundled model, alternating in one run: an engine at worker_nice 0, then one at `--nice`,
`--rounds` times; each answers 4 greedy prompts at once (max_tokens each) after a warm-up, and
the aggregate decode tok/s (completion tokens over the wall time of the 4) is kept. Reported:
the median of each and the ratio. `--busy N` keeps N cores busy meanwhile (processes of this
session: with Linux's autogroups, nice weighs threads against the same session's only).
"""

from __future__ import annotations

import argparse
import asyncio
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


async def _four(engine: Engine, max_tokens: int) -> float:
    t0 = time.perf_counter()
    tokens = await asyncio.gather(*(_answer(engine, p, max_tokens) for p in PROMPTS))
    return sum(tokens) / (time.perf_counter() - t0)


def measure(nice: int, max_tokens: int) -> float:
    engine = Engine("bench", bundled_model_path(), config=EngineConfig(worker_nice=nice, lookup_draft=0, request_timeout_s=0))
    engine.load()
    try:
        asyncio.run(_four(engine, 8))  # warm-up: llama.cpp's threads start, caches fill
        return asyncio.run(_four(engine, max_tokens))
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nice", type=int, default=5, help="the worker_nice compared with 0")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--busy", type=int, default=0, help="processes that each keep one core busy meanwhile")
    args = p.parse_args(argv)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    results: dict[int, list[float]] = {0: [], args.nice: []}
    try:
        for r in range(args.rounds):
            for nice in (0, args.nice) if r % 2 == 0 else (args.nice, 0):  # ABBA: drift hits both alike
                results[nice].append(measure(nice, args.max_tokens))
                print(f"round {r + 1}: worker_nice {nice:2d}  {results[nice][-1]:7.1f} tok/s (4 streams)", flush=True)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    base, lowered = statistics.median(results[0]), statistics.median(results[args.nice])
    print(f"\nmedian tok/s, 4 streams x {args.max_tokens} tokens, {args.busy} core(s) kept busy: "
          f"worker_nice 0 {base:.1f}, worker_nice {args.nice} {lowered:.1f}; "
          f"ratio {lowered / base:.3f} ({(1 - lowered / base) * 100:+.1f} % cost)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
