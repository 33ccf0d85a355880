"""Where `jarvis serve`'s CPU goes under N concurrent streams: per thread, per generated token.

    python -m jarvis.bench.serve_profile [--streams 4] [--rounds 3] [--tree OLD --tree NEW] [--pyspy OUT.json]
    python -m jarvis.bench.serve_profile --peer-server .bench/llama-server   # both servers' threads, side by side
    jarvis bench --suite serve-profile -- --tree /path/to/base --tree .
    jarvis bench --suite serve-profile -- --streams 1 --variant si12:JARVIS_ENGINE_STREAM_INTERVAL_MS=12

Each `--tree` is a JARVIS source tree (PYTHONPATH of its `jarvis serve`; default: this code); each
`--variant` one more server of the first tree with some settings changed (JARVIS_* variables). All
servers run at once (bundled model, response cache off) and the rounds alternate between them, so
a neighbour's load hits each alike. Per round and server, the OS's CPU-time counters of every
thread of the server process are read before and after one load (the 8 chat prompts of the peer
bench, greedy, `--max-tokens`, `--streams` at a time; `--whole`: not streamed, each reply taken whole):
- loop: the main thread (the asyncio loop: HTTP, SSE, the Assistant); its CPU ms per generated
  token, and its wake-ups (voluntary context switches: each time it slept in epoll and was woken)
  per token and per second;
- engine: the Python thread named `engine:*` (batch, sampling, text hand-over; it also runs
  ggml's thread 0 inside llama_decode);
- ggml: the other native threads that burn CPU (llama.cpp's OpenMP workers);
- other: the rest (catalog, sampler, executors).
And for every server, JARVIS or not, the same two sums: compute, the llama.cpp threads (the
`engine.n_threads` threads that ran longest: in JARVIS the engine worker and ggml's workers, in
llama-server its main thread and ggml's workers; each also runs its server's sampling between two
decodes), and serving, all its other threads (JARVIS's loop and helpers, llama-server's HTTP
threads). `--peer-server PATH` adds a llama-server (the peer bench's settings and sampling) to the
rotation, so both servers' serving CPU per token is read in the same run.
CPU time, not wall time: it holds on a shared, noisy machine. It is the scheduler's run time in
nanoseconds (/proc/.../schedstat) where the kernel keeps it, else 10 ms ticks. Thread names come
from `py-spy dump` (the `test` extra pins py-spy); without it only the loop is told apart.
`--gaps` also times every llama_decode in each server (decode_gaps.py): the engine worker's gap
between two decodes, its Python on the critical path, beside the decodes.
`--pyspy OUT.json` also records the first tree with `py-spy record --native` during one more
load and prints the top frames by share of samples per thread (see docs/perf/).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from jarvis.bench.scratch import scratch_dir
from jarvis.bench.peer_bench import (PEER_CTX, PEER_SLOTS, PROMPTS, _stop, free_port, jarvis_setup, parse_variants,
                                     peer_env, run_load, start_llama_server, wait_ready)
from jarvis.engine.config import auto_threads


def start_tree(tree: str, log, gaps_file: str = "", settings: dict[str, str] | None = None) -> tuple[str, subprocess.Popen]:
    """`jarvis serve` from `tree`; `settings`: JARVIS_* variables of a variant (--variant)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve()),
           "JARVIS_GENERAL_DATA_DIR": scratch_dir("jarvis-serve-profile-"),
           "JARVIS_CACHE_ENABLED": "false", "JARVIS_SERVER_TOKEN": "", "JARVIS_SERVER_RATE_LIMIT_RPS": "0",
           **(settings or {})}
    # --gaps: the same server, its decodes timed by this tree's wrapper (a file: any tree can be timed)
    entry = [str(Path(__file__).with_name("decode_gaps.py"))] if gaps_file else ["-m", "jarvis"]
    if gaps_file:
        env["JARVIS_BENCH_GAPS_FILE"] = gaps_file
    proc = subprocess.Popen([sys.executable, *entry, "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=log, cwd=tree)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return url, proc


def thread_counters(pid: int) -> dict[int, tuple[float, int]]:
    """tid -> (CPU seconds, voluntary context switches), from /proc: the scheduler's run time in
    nanoseconds (schedstat), else utime + stime in clock ticks (10 ms: coarse for one load)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            try:
                cpu = int((task / "schedstat").read_text().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                stat = (task / "stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            vol = 0
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    vol = int(line.split()[1])
            out[int(task.name)] = (cpu, vol)
    return out


def thread_names(pid: int) -> dict[int, str]:
    """OS thread id -> Python thread name, from `py-spy dump --json` ({} without py-spy)."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        return {}
    with contextlib.suppress(subprocess.SubprocessError, json.JSONDecodeError, OSError):
        raw = subprocess.run([pyspy, "dump", "--json", "--pid", str(pid)], capture_output=True, text=True,
                             timeout=60).stdout
        return {t["os_thread_id"]: t.get("thread_name") or "" for t in json.loads(raw) if t.get("os_thread_id")}
    return {}


def classify(pid: int, tid: int, names: dict[int, str]) -> str:
    if tid == pid:
        return "loop"
    name = names.get(tid, "")
    if name.startswith("engine:"):
        return "engine"
    if name:
        return "other"
    return "native"  # ggml's workers, and native threads of libraries: split by CPU below


def compute_and_serving(cpu_by_thread: dict[int, float], threads: int) -> tuple[float, float]:
    """CPU seconds of the `threads` threads that ran longest (llama.cpp's) and of all the others."""
    ranked = sorted(cpu_by_thread.values(), reverse=True)
    return sum(ranked[:threads]), sum(ranked[threads:])


def measure(pid: int, names: dict[int, str], before, after, tokens: int, wall: float, threads: int,
            python: bool = True) -> dict:
    """One load's CPU by thread kind; `python` False (llama-server): only compute and serving."""
    used = {tid: cpu - before.get(tid, (0.0, 0))[0] for tid, (cpu, _) in after.items()}
    compute, serving = compute_and_serving(used, threads)
    share: dict[str, float] = defaultdict(float)
    if python:
        for tid in used:
            kind = classify(pid, tid, names)
            if kind == "native":
                kind = "ggml" if used[tid] > 0.02 * wall else "other"
            share[kind] += used[tid]
        loop_wakes = after.get(pid, (0.0, 0))[1] - before.get(pid, (0.0, 0))[1]
    else:
        share.update(compute=compute, serving=serving)
    total = sum(share.values()) or 1.0
    per_token = 1000 / max(tokens, 1)
    m = {"tokens": tokens, "wall_s": wall, "tok_s": tokens / wall,
         "cpu_s": dict(share), "cpu_share": {k: v / total for k, v in share.items()},
         "compute_cpu_ms_per_token": compute * per_token, "serving_cpu_ms_per_token": serving * per_token}
    if python:
        m.update(loop_cpu_ms_per_token=share["loop"] * per_token, engine_cpu_ms_per_token=share["engine"] * per_token,
                 loop_wakeups_per_token=loop_wakes / max(tokens, 1), loop_wakeups_per_s=loop_wakes / wall)
    return m


PEER_LABEL = "llama-server"


@dataclass(frozen=True)
class Served:
    """One server in the rotation: a `jarvis serve` (a tree or a variant) or the peer llama-server."""

    label: str
    url: str
    proc: subprocess.Popen
    threads: int  # llama.cpp's compute threads: how many of its threads count as compute

    @property
    def python(self) -> bool:
        return self.label != PEER_LABEL

    @property
    def extra(self) -> dict:
        """Sent with every request: JARVIS's response cache off (llama-server has none to turn off)."""
        return {"cache": False} if self.python else {}


async def one_round(server: Served, names, streams: int, max_tokens: int, stream: bool = True) -> dict:
    pid = server.proc.pid
    before = thread_counters(pid)
    res = await run_load(server.url, streams, max_tokens, server.extra, PROMPTS, stream)
    after = thread_counters(pid)
    m = measure(pid, names, before, after, res.tokens, res.wall_s, server.threads, server.python)
    m["texts"] = res.texts
    return m


def summarise_speedscope(path: Path, top: int = 15) -> str:
    """Markdown: per thread, its share of all samples, then its top frames (self and inclusive)."""
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]
    total = sum(sum(p.get("weights") or [1] * len(p["samples"])) for p in doc["profiles"]) or 1
    lines = []
    for prof in sorted(doc["profiles"], key=lambda p: -sum(p.get("weights") or [1] * len(p["samples"]))):
        weights = prof.get("weights") or [1] * len(prof["samples"])
        n = sum(weights)
        if n / total < 0.01:
            continue
        self_c: Counter = Counter()
        incl: Counter = Counter()
        for stack, w in zip(prof["samples"], weights):
            if stack:
                self_c[stack[-1]] += w
            for f in set(stack):
                incl[f] += w
        lines.append(f"\n#### {prof['name']}: {100 * n / total:.1f} % of all samples\n")
        lines.append("| self % of thread | frame | | inclusive % | frame |\n|---:|---|---|---:|---|")
        for (fs, ws), (fi, wi) in zip(self_c.most_common(top), incl.most_common(top)):
            def name(i):
                f = frames[i]
                where = f.get("file", "")
                where = where.rsplit("/", 2)[-2:] if where else []
                return f"`{f['name']}` {'/'.join(where)}".replace("|", "\\|")
            lines.append(f"| {100 * ws / n:.1f} | {name(fs)} | | {100 * wi / n:.1f} | {name(fi)} |")
    return "\n".join(lines)


async def record_pyspy(url: str, pid: int, out: Path, streams: int, max_tokens: int, rate: int) -> str:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    rec = subprocess.Popen([pyspy, "record", "--native", "-r", str(rate), "-o", str(out), "--format", "speedscope",
                            "--pid", str(pid), "--threads"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    await asyncio.sleep(1.0)  # py-spy attaches
    for _ in range(2):
        await run_load(url, streams, max_tokens, {"cache": False}, PROMPTS)
    rec.send_signal(2)  # SIGINT: py-spy writes its file and exits
    rec.wait(60)
    return summarise_speedscope(out) if out.exists() else f"(py-spy wrote nothing: {rec.stderr.read()[:300]!r})"


def _median(rows: list[dict], key: str, sub: str | None = None) -> float:
    vals = [(r[key][sub] if sub else r[key]) for r in rows if (sub is None or sub in r[key])]
    return statistics.median(vals) if vals else 0.0


def _ratio_range(ratios: list[float]) -> dict:
    return {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3), "max": round(max(ratios), 3)}


async def run(trees: list[str], streams: int, rounds: int, max_tokens: int, pyspy: str, rate: int, log, say,
              gaps: bool = False, variants: dict[str, dict[str, str]] | None = None, stream: bool = True,
              peer_server: str = "") -> dict:
    """Each tree, then each variant (the first tree with its settings), then the peer (a llama-server
    binary, if given), as one server; results by tree path, variant name or PEER_LABEL."""
    servers: list[Served] = []
    specs = [(tree, tree, {}) for tree in trees] + [(name, trees[0], env) for name, env in (variants or {}).items()]
    labels = [label for label, _, _ in specs] + ([PEER_LABEL] if peer_server else [])
    gaps_dir = Path(tempfile.mkdtemp(prefix="jarvis-gaps-")) if gaps else None
    gap_files = {label: str(gaps_dir / f"{i}.json") if gaps_dir else "" for i, label in enumerate(labels)}
    out: dict = {}
    try:
        for label, tree, settings in specs:
            say(f"starting jarvis serve {label}" + (f" from {tree} with {settings}" if settings else "") + " ...")
            url, proc = start_tree(tree, log, gap_files[label], settings)
            servers.append(Served(label, url, proc, jarvis_setup(0, settings)["n_threads"]))
        if peer_server:
            say(f"starting {peer_server} ...")
            url, proc, _ = start_llama_server(peer_server, auto_threads(), parallel=PEER_SLOTS, ctx=PEER_CTX,
                                              log=log, env=peer_env("jarvis"))
            servers.append(Served(PEER_LABEL, url, proc, auto_threads()))
        for server in servers:  # warm-up: load, first allocations
            await run_load(server.url, streams, 8, server.extra, PROMPTS)
        names = {s.label: thread_names(s.proc.pid) if s.python else {} for s in servers}
        rows: dict[str, list[dict]] = {label: [] for label in labels}
        for r in range(rounds):
            for server in servers if r % 2 == 0 else servers[::-1]:
                label = server.label
                m = await one_round(server, names[label], streams, max_tokens, stream)
                rows[label].append(m)
                loop = (f"loop {m['loop_cpu_ms_per_token']:.3f} ms CPU/token, "
                        f"{m['loop_wakeups_per_token']:.2f} wake-ups/token, " if server.python else "")
                say(f"  round {r + 1} {label}: {m['tokens']} tokens {m['tok_s']:.1f} tok/s, {loop}serving "
                    f"{m['serving_cpu_ms_per_token']:.3f} and compute {m['compute_cpu_ms_per_token']:.2f} ms CPU/token, "
                    f"shares " + " ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(m['cpu_share'].items())))
        load = os.getloadavg()
        out = {"bench": "serve-profile", "streams": streams, "stream": stream, "rounds": rounds,
               "max_tokens": max_tokens,
               "loadavg": [round(x, 2) for x in load], "trees": {}}
        first = rows[labels[0]][0]["texts"]
        for label in labels:
            rs = rows[label]
            out["trees"][label] = {
                "tok_s": round(_median(rs, "tok_s"), 1),
                "serving_cpu_ms_per_token_median": round(_median(rs, "serving_cpu_ms_per_token"), 4),
                "compute_cpu_ms_per_token_median": round(_median(rs, "compute_cpu_ms_per_token"), 4),
                "cpu_share_median": {k: round(_median(rs, "cpu_share", k), 3)
                                     for k in sorted({k for r in rs for k in r["cpu_share"]})},
                "identical_texts_vs_first_tree": f"{sum(a == b for r in rs for a, b in zip(r['texts'], first))}"
                                                 f"/{sum(len(r['texts']) for r in rs)}",
            }
            if label != PEER_LABEL:
                out["trees"][label].update({
                    "loop_cpu_ms_per_token": [round(r["loop_cpu_ms_per_token"], 4) for r in rs],
                    "loop_cpu_ms_per_token_median": round(_median(rs, "loop_cpu_ms_per_token"), 4),
                    "engine_cpu_ms_per_token_median": round(_median(rs, "engine_cpu_ms_per_token"), 4),
                    "loop_wakeups_per_token_median": round(_median(rs, "loop_wakeups_per_token"), 3),
                    "loop_wakeups_per_s_median": round(_median(rs, "loop_wakeups_per_s"), 1)})
        if peer_server:  # per round, the same load: JARVIS's serving CPU over llama-server's
            peer = [r["serving_cpu_ms_per_token"] for r in rows[PEER_LABEL]]
            mine = [r["serving_cpu_ms_per_token"] for r in rows[labels[0]]]
            ratios = [a / b for a, b in zip(mine, peer) if b]
            if ratios:
                out["trees"][labels[0]]["serving_cpu_vs_peer"] = _ratio_range(ratios)
        jarvis_labels = [s.label for s in servers if s.python]
        base = out["trees"][labels[0]]["loop_cpu_ms_per_token"]
        for label in jarvis_labels[1:]:
            new = out["trees"][label]["loop_cpu_ms_per_token"]
            out["trees"][label]["loop_cpu_per_token_vs_first"] = _ratio_range([b / a for a, b in zip(base, new)])
        if pyspy:
            first = servers[0]
            say(f"py-spy record --native on {first.label} ...")
            out["pyspy_summary"] = await record_pyspy(first.url, first.proc.pid, Path(pyspy), streams, max_tokens, rate)
    finally:
        for server in servers:
            _stop(server.proc)
    for label, path in gap_files.items():  # written by each server as it exits (decode_gaps.py)
        if path and Path(path).is_file():
            out["trees"][label]["decode_gaps"] = json.loads(Path(path).read_text())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jarvis bench --suite serve-profile", description=__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", default=[], help="a JARVIS source tree to serve from (repeatable); "
                                                                 "default: this code")
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--pyspy", default="", help="also record the first tree with py-spy into this speedscope file")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--log", default="", help="file for the servers' output (default: discarded)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument("--gaps", action="store_true", help="also time every llama_decode and the worker's gap "
                                                       "between two (decode_gaps.py)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="one more server of the first tree with these JARVIS_* settings, e.g. "
                        "si12:JARVIS_ENGINE_STREAM_INTERVAL_MS=12 (repeatable)")
    p.add_argument("--peer-server", default="", metavar="PATH",
                   help="also a llama-server binary on the bundled model (the peer bench's settings): its "
                        "serving and compute CPU per token beside JARVIS's")
    p.add_argument("--whole", action="store_true", help="the replies not streamed (\"stream\": false): each taken "
                                                        "whole, as an agent or a script takes them")
    args = p.parse_args(argv)
    trees = args.tree or [str(Path(__file__).resolve().parents[2])]
    variants = parse_variants(p, args.variant)
    say = (lambda *_: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(args.log, "ab")) if args.log else subprocess.DEVNULL
        res = asyncio.run(run(trees, args.streams, args.rounds, args.max_tokens, args.pyspy, args.rate, log, say,
                              args.gaps, variants, stream=not args.whole, peer_server=args.peer_server))
    if not args.json:
        for tree, t in res["trees"].items():
            loop = (f"loop {t['loop_cpu_ms_per_token_median']} ms CPU/token (rounds {t['loop_cpu_ms_per_token']}), "
                    f"engine {t['engine_cpu_ms_per_token_median']} ms CPU/token, loop wake-ups "
                    f"{t['loop_wakeups_per_token_median']}/token {t['loop_wakeups_per_s_median']}/s, "
                    if "loop_cpu_ms_per_token" in t else "")
            print(f"{tree}: {t['tok_s']} tok/s, {loop}serving {t['serving_cpu_ms_per_token_median']} and compute "
                  f"{t['compute_cpu_ms_per_token_median']} ms CPU/token, "
                  f"shares {t['cpu_share_median']}, identical {t['identical_texts_vs_first_tree']}"
                  + (f", loop CPU/token vs first {t['loop_cpu_per_token_vs_first']}" if 'loop_cpu_per_token_vs_first' in t else "")
                  + (f", serving CPU/token vs llama-server {t['serving_cpu_vs_peer']}" if 'serving_cpu_vs_peer' in t else ""))
            if "decode_gaps" in t:
                g = t["decode_gaps"]
                print(f"  worker gap between decodes {g['gap_ms']} ms, decodes {g['decode_ms']} ms; "
                      f"one-token steps: gap {g['gap_ms_one_token']}, decode {g['decode_ms_one_token']}")
        print(f"load average {res['loadavg']}")
        if "pyspy_summary" in res:
            print(res["pyspy_summary"])
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
