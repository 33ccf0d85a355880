"""Both servers' llama.cpp decodes, timed from outside by the same kernel probes: how many decodes
a load takes, how long each lasts, and how long each server spends between two of them.

    python -m jarvis.bench.step_profile --peer-server .bench/llama-server [--rounds 6] [--streams 4] [--bare]
    jarvis bench --suite step-profile -- --peer-server .bench/llama-server

Why: a wall-clock ratio of two servers on a shared 2-core machine moves by +-5 % between runs, more
than the difference it is meant to show. Under the same load, though, both servers make the same
llama.cpp calls (the same number of decodes, of the same widths), so what either adds lies in two
places that can be timed per step: the gap between two decodes (sampling, text, HTTP, planning the
next batch), and a decode made longer by the server's other threads taking a core from llama.cpp's.

How: `perf probe` puts a uprobe on the entry and the return of the function each server decodes
through (JARVIS: `llama_decode` in llama-cpp-python's libllama; llama-server: `llama_process`, or
`llama_decode` in a build without it), and `perf record -k monotonic` records them while both
servers take turns on the peer bench's load (8 chat prompts, greedy, the same sampling sent to
both), streamed and taken whole, in ABBA order. Each load's window (time.monotonic, the clock perf
records with) selects its decodes. Linux only; needs `perf` and root (uprobes). The probes are
removed again at the end. A uprobe costs both servers the same few microseconds per call.

`--bare` times a third process beside them: a plain decode loop on JARVIS's own llama.cpp
handles, with no server around it (bare_decode.py), through the same libllama probe. Its decodes
say what llama.cpp costs in a Python process with JARVIS's context, apart from what serving adds.

What it found (README, "Sixteenth session on issue 27"): 193 decodes per four-stream load on both
servers; JARVIS's gap between two decodes 0.3-0.4 ms against llama-server's 0.4-1.0 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jarvis.bench.peer_bench import (MAX_TOKENS, PEER_CTX, PEER_SLOTS, PROMPTS, SAMPLING, _stop, code_path,
                                     parse_variants, peer_env, run_load, start_jarvis, start_llama_server)
from jarvis.bench.sched_profile import perf_recording, require_perf
from jarvis.engine.config import auto_threads

GROUP = "jarvis_steps"  # the probes' perf group, removed whole at the end
# perf script -F pid,time,event:  "  5580  1274.690662: jarvis_steps:enter_jarvis: "
_LINE = re.compile(r"^\s*(?P<pid>\d+)\s+(?P<time>[\d.]+):\s+(?P<group>[\w]+):(?P<event>\w+):")


@dataclass(frozen=True)
class Probe:
    server: str  # a C identifier: it names the perf events
    binary: str
    function: str

    def events(self) -> tuple[str, str]:
        return (f"{GROUP}:enter_{self.server}={self.function}", f"{GROUP}:exit_{self.server}={self.function}%return")


def jarvis_library() -> str:
    """llama-cpp-python's libllama, where JARVIS's llama_decode calls land (without importing it)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise SystemExit("llama-cpp-python is not installed")
    lib = Path(spec.origin).parent / "lib" / "libllama.so"
    if not lib.exists():
        raise SystemExit(f"no {lib}: this llama-cpp-python keeps its library elsewhere")
    return str(lib.resolve())


def decode_function(binary: str) -> str:
    """llama-server decodes through llama_process where the build has it (llama_decode wraps the
    same call for the C API); an older build only through llama_decode."""
    symbols = subprocess.run(["nm", *(["-D"] if binary.endswith(".so") else []), binary], capture_output=True,
                             text=True)
    names = {line.split()[-1] for line in symbols.stdout.splitlines() if " T " in line}
    return "llama_process" if "llama_process" in names else "llama_decode"


def parse_events(text: str) -> dict[int, list[tuple[float, str]]]:
    """`perf script -F pid,time,event` lines of this group -> per process, (time, "enter"|"exit")
    in time order (several JARVIS servers share one library's probes: their pids tell them
    apart). A return probe's event carries perf's `__return` suffix."""
    out: dict[int, list[tuple[float, str]]] = collections.defaultdict(list)
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None or m["group"] != GROUP:
            continue
        kind = m["event"].partition("_")[0]
        if kind in ("enter", "exit"):
            out[int(m["pid"])].append((float(m["time"]), kind))
    for events in out.values():
        events.sort()
    return dict(out)


def pair_decodes(events: list[tuple[float, str]]) -> list[tuple[float, float]]:
    """(start, end) of each decode: an enter and the exit after it (a lone one at an edge of the
    recording is dropped)."""
    decodes, start = [], None
    for t, kind in events:
        if kind == "enter":
            start = t
        elif start is not None:
            decodes.append((start, t))
            start = None
    return decodes


def load_stats(decodes: list[tuple[float, float]], t0: float, t1: float) -> dict:
    """One load's decodes (those inside its window [t0, t1]): their count, time, and the gaps
    between consecutive ones, in ms; `outside_ms_per_decode` is the load's wall time not spent in
    a decode, per decode (the gaps plus the start and the end of the load)."""
    inside = [(a, b) for a, b in decodes if a >= t0 and b <= t1]
    if not inside:
        return {"decodes": 0}
    lengths = [(b - a) * 1000 for a, b in inside]
    gaps = [(c - b) * 1000 for (_, b), (c, _) in zip(inside, inside[1:])]
    wall_ms = (t1 - t0) * 1000
    return {"decodes": len(inside), "decode_ms_median": statistics.median(lengths), "decode_ms_sum": sum(lengths),
            "gap_ms_median": statistics.median(gaps) if gaps else 0.0, "gap_ms_sum": sum(gaps),
            "outside_ms_per_decode": (wall_ms - sum(lengths)) / len(inside), "wall_ms": wall_ms}


def summarise(loads: list[dict]) -> dict:
    """The median of each figure over a server's loads of one kind (the figures every load has: a
    load without decodes has only its count)."""
    keys = set.intersection(*(set(load) for load in loads)) if loads else set()
    return {k: round(statistics.median(load[k] for load in loads), 3) for k in loads[0] if k in keys} \
        | {"loads": len(loads)}


# ---- perf -------------------------------------------------------------------------------------
def _perf(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["perf", *args], capture_output=True, text=True, check=check)


def add_probes(probes: list[Probe]) -> None:
    _perf("probe", "-q", "-d", f"{GROUP}:*", check=False)  # a stale set from an interrupted run
    for probe in probes:
        for event in probe.events():
            r = _perf("probe", "-q", "-x", probe.binary, "-a", event, check=False)
            if r.returncode != 0:
                raise SystemExit(f"perf probe {event} on {probe.binary} failed: {r.stderr.strip()[-300:]} "
                                 "(uprobes need root)")


def remove_probes() -> None:
    _perf("probe", "-q", "-d", f"{GROUP}:*", check=False)


# ---- the run ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Runner:
    """One thing whose decodes are timed: its pid (the probes' events name it), a load of it, and
    the kinds of replies it gives (a server: streamed and whole; the bare loop: one)."""

    pid: int
    load: Callable[[str], int]  # kind -> tokens generated
    kinds: tuple[str, ...] = ("streamed", "whole")


def round_order(runners: dict[str, Runner], kinds: list[str]) -> list[tuple[str, str]]:
    """One round's loads, as (name, kind): every kind asked for of each server that gives it, one
    kind after the other, then once each runner that gives none of them (the bare loop)."""
    order = [(name, kind) for kind in kinds for name, runner in runners.items() if kind in runner.kinds]
    return order + [(name, runner.kinds[0]) for name, runner in runners.items() if not set(kinds) & set(runner.kinds)]


def http_runner(url: str, extra: dict, pid: int, streams: int) -> Runner:
    def load(kind: str) -> int:
        res = asyncio.run(run_load(url, streams, MAX_TOKENS, dict(extra), PROMPTS, stream=kind == "streamed"))
        return res.tokens

    return Runner(pid, load)


class BareLoop:
    """`python -m jarvis.bench.bare_decode` in a process of its own: one load per line sent."""

    def __init__(self, threads: int, streams: int, log):
        self._proc = subprocess.Popen([sys.executable, "-m", "jarvis.bench.bare_decode", "--streams", str(streams),
                                       "--threads", str(threads)], env=code_path(dict(os.environ)),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.pid = self._proc.pid

    def load(self) -> int:
        self._proc.stdin.write("go\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline().split()  # "tokens N decodes D"
        if len(answer) != 4 or answer[0] != "tokens":
            raise SystemExit(f"the bare decode loop stopped (exit {self._proc.poll()}); see the servers' log")
        return int(answer[1])

    def close(self) -> None:
        self._proc.stdin.close()  # end of input: it closes its handles and exits
        _stop(self._proc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jarvis bench --suite step-profile", description=__doc__.splitlines()[0])
    p.add_argument("--peer-server", required=True, help="a llama-server binary to time beside JARVIS")
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--rounds", type=int, default=6, help="loads per server and kind, in ABBA order")
    p.add_argument("--stream-only", action="store_true", help="no loads taken whole")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="one more jarvis serve with these environment settings (repeatable)")
    p.add_argument("--threads", type=int, default=0, help="compute threads per server (default: the cores)")
    p.add_argument("--bare", action="store_true",
                   help="also time a bare decode loop on JARVIS's handles (jarvis/bench/bare_decode.py)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    require_perf(p)
    variants = parse_variants(p, args.variant)
    say = (lambda *_: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    threads = args.threads or auto_threads()
    probes = [Probe("jarvis", jarvis_library(), "llama_decode"),
              Probe("llama_server", str(Path(args.peer_server).resolve()), decode_function(args.peer_server))]
    kinds = ["streamed"] if args.stream_only else ["streamed", "whole"]
    work = tempfile.mkdtemp(prefix="jarvis-steps-")
    data = os.path.join(work, "steps.data")
    windows: list[tuple[str, str, float, float, int]] = []  # server, kind of replies, t0, t1, tokens
    add_probes(probes)
    try:
        with open(os.path.join(work, "servers.log"), "ab") as log, contextlib.ExitStack() as running:
            runners: dict[str, Runner] = {}
            for name, env in {"jarvis": {}, **variants}.items():
                url, proc = start_jarvis(threads, env, log)
                running.callback(_stop, proc)
                runners[name] = http_runner(url, {**SAMPLING, "cache": False}, proc.pid, args.streams)
            url, proc, _ = start_llama_server(args.peer_server, threads, parallel=PEER_SLOTS, ctx=PEER_CTX, log=log,
                                              env=peer_env("jarvis"))
            running.callback(_stop, proc)
            runners["llama-server"] = http_runner(url, dict(SAMPLING), proc.pid, args.streams)
            if args.bare:  # its decodes land in the same libllama as jarvis serve's: the pid tells them apart
                loop = BareLoop(threads, args.streams, log)
                running.callback(loop.close)
                runners["bare"] = Runner(loop.pid, lambda _kind: loop.load(), ("loop",))
            for runner in runners.values():  # warm-up: the first load fills each prompt cache
                runner.load(runner.kinds[0])
            with perf_recording(["record", "-q", "-k", "monotonic", "-a", "-e", f"{GROUP}:*", "-o", data]):
                for r in range(args.rounds):
                    order = round_order(runners, kinds)
                    for name, kind in (order if r % 2 == 0 else order[::-1]):
                        t0 = time.monotonic()
                        tokens = runners[name].load(kind)
                        t1 = time.monotonic()
                        windows.append((name, kind, t0, t1, tokens))
                        say(f"round {r + 1} {name:12s} {kind:8s} {tokens} tokens {tokens / (t1 - t0):6.1f} tok/s")
                        time.sleep(0.3)  # a gap no decode spans, between two windows
        events = parse_events(_perf("script", "-i", data, "-F", "pid,time,event").stdout)
    finally:
        remove_probes()
        with contextlib.suppress(FileNotFoundError):  # parsed; only the servers' log stays (as sched-profile)
            os.unlink(data)
    decodes = {name: pair_decodes(events.get(runner.pid, [])) for name, runner in runners.items()}
    per_kind: dict[str, list[dict]] = collections.defaultdict(list)
    for name, kind, t0, t1, tokens in windows:
        stats = load_stats(decodes.get(name, []), t0, t1)
        per_kind[f"{name}/{kind}"].append({**stats, "tok_s": tokens / (t1 - t0)})
    out = {"bench": "step-profile", "streams": args.streams, "rounds": args.rounds, "threads": threads,
           "functions": {p.server: p.function for p in probes},
           "servers": {key: summarise(loads) for key, loads in per_kind.items()}}
    if not args.json:
        print_table(out)
    print(json.dumps(out))
    return 0


def print_table(out: dict) -> None:
    print(f"{'server / replies':26s} {'decodes/load':>12s} {'decode ms':>10s} {'gap ms':>8s} "
          f"{'outside ms/decode':>18s} {'tok/s':>7s}   (medians over {out['rounds']} loads)", file=sys.stderr)
    for key, s in out["servers"].items():
        if not s.get("decodes"):
            print(f"{key:26s} no decodes recorded", file=sys.stderr)
            continue
        print(f"{key:26s} {s['decodes']:12.0f} {s['decode_ms_median']:10.2f} {s['gap_ms_median']:8.3f} "
              f"{s['outside_ms_per_decode']:18.3f} {s['tok_s']:7.1f}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
