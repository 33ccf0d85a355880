"""What the OS scheduler does to llama.cpp's threads in `jarvis serve` and in llama-server, under the
same load: `perf sched record` around each server's load, alternating.

    python -m jarvis.bench.sched_profile --peer-server .bench/llama-server [--streams 4] [--rounds 2]
    python -m jarvis.bench.sched_profile --variant nice0:JARVIS_ENGINE_WORKER_NICE=0   # JARVIS only
    jarvis bench --suite sched-profile -- --peer-server .bench/llama-server

Linux only, needs `perf` and the right to record scheduler tracepoints (root, or
kernel.perf_event_paranoid <= -1). The servers run one at a time; each gets one warm-up load, then
`--rounds` loads (the peer bench's 8 chat prompts, greedy, the same sampling sent to both,
`--streams` at a time) inside one recording.

The compute threads are the server's `--threads` threads that ran longest (llama.cpp's ggml/OpenMP
threads; in JARVIS the engine's worker is the first of them). For them, summed:
- run: CPU time; delay: time runnable but waiting for a core; sleep: time asleep (an OpenMP
  barrier's futex after its spin, or no work);
- preempted: switch-outs while still runnable, by who took the core: `compute` is the server's
  other compute thread, so both were on ONE core, time-sliced, each waiting at every barrier for
  the other (the costly case on a small machine); `server` its other threads (JARVIS's asyncio
  loop, llama-server's HTTP threads); `client` this process; `kernel` kernel threads; `other` the
  rest of the machine.
Also the server's other threads' CPU, and tokens per second of the loads (wall time: noisy on a
shared machine, so read the counts beside it).

What it found (README, "Tenth session on issue 27"): at four streams JARVIS's compute threads are
time-sliced on one core two to three times as often as llama-server's.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from jarvis.bench.peer_bench import (MAX_TOKENS, PEER_CTX, PEER_SLOTS, PROMPTS, SAMPLING, _stop, parse_variants,
                                     peer_env, run_load, start_jarvis, start_llama_server)
from jarvis.engine.config import auto_threads

# perf sched timehist:  "  1593.373190 [0001]  python[5169/5153]   0.007   0.003   0.065"
_TIMEHIST = re.compile(r"^\s*[\d.]+\s+\[\d+\]\s+(?P<comm>.+?)\[(?P<tid>\d+)(?:/(?P<pid>\d+))?\]"
                       r"\s+(?P<wait>[\d.]+)\s+(?P<delay>[\d.]+)\s+(?P<run>[\d.]+)\s*$")
# perf script -F trace, sched:sched_switch
_SWITCH = re.compile(r"prev_comm=.*? prev_pid=(?P<prev>\d+) prev_prio=\d+ "
                     r"prev_state=(?P<state>\S+) ==> next_comm=(?P<next_comm>.*?) next_pid=(?P<next>\d+)")
KERNEL_THREADS = ("kworker", "rcu_", "kdamond", "kcompactd", "ksoftirqd", "migration", "kswapd", "khugepaged")
PREEMPTORS = ("compute", "server", "client", "kernel", "other")


@dataclass
class ThreadTime:
    pid: int = 0
    run_ms: float = 0.0
    delay_ms: float = 0.0
    sleep_ms: float = 0.0


@dataclass
class Profile:
    compute: list[int]
    run_ms: float
    delay_ms: float
    sleep_ms: float
    sleeps: int  # switch-outs of the compute threads asleep (S)
    preempted: dict[str, int] = field(default_factory=dict)  # switch-outs while runnable, by who took the core
    server_other_ms: float = 0.0  # the server's other threads
    server_other_threads: int = 0

    def as_dict(self) -> dict:
        return {"compute_threads": len(self.compute), "run_ms": round(self.run_ms), "delay_ms": round(self.delay_ms),
                "sleep_ms": round(self.sleep_ms), "sleeps": self.sleeps, "preempted": self.preempted,
                "server_other_ms": round(self.server_other_ms), "server_other_threads": self.server_other_threads}


def parse_timehist(text: str) -> dict[int, ThreadTime]:
    """tid -> its summed run, scheduling delay and sleep, from `perf sched timehist` (idle excluded)."""
    out: dict[int, ThreadTime] = {}
    for line in text.splitlines():
        m = _TIMEHIST.match(line)
        if m is None or m["tid"] == "0":
            continue
        tid = int(m["tid"])
        t = out.setdefault(tid, ThreadTime(int(m["pid"] or tid)))
        t.run_ms += float(m["run"])
        t.delay_ms += float(m["delay"])
        t.sleep_ms += float(m["wait"])
    return out


def parse_switches(text: str) -> list[tuple[int, str, str, int]]:
    """(prev tid, prev state, next comm, next tid) of every sched_switch in `perf script -F trace`."""
    return [(int(m["prev"]), m["state"], m["next_comm"], int(m["next"]))
            for m in map(_SWITCH.search, text.splitlines()) if m is not None]


def summarise(times: dict[int, ThreadTime], switches, server_pid: int, client_pid: int, threads: int) -> Profile:
    mine = {tid: t for tid, t in times.items() if t.pid == server_pid}
    compute = sorted(mine, key=lambda tid: -mine[tid].run_ms)[:threads]
    others = [t for tid, t in mine.items() if tid not in compute]

    def who(tid: int, comm: str) -> str:
        if tid in compute:
            return "compute"
        pid = times[tid].pid if tid in times else tid
        if pid == server_pid:
            return "server"
        if pid == client_pid:
            return "client"
        return "kernel" if comm.startswith(KERNEL_THREADS) else "other"

    preempted = dict.fromkeys(PREEMPTORS, 0)
    sleeps = 0
    for prev, state, next_comm, nxt in switches:
        if prev not in compute:
            continue
        if state.startswith("S"):
            sleeps += 1
        elif state.startswith("R"):
            preempted[who(nxt, next_comm)] += 1
    return Profile(compute, sum(mine[t].run_ms for t in compute), sum(mine[t].delay_ms for t in compute),
                   sum(mine[t].sleep_ms for t in compute), sleeps, preempted,
                   sum(t.run_ms for t in others), len(others))


def require_perf(parser: argparse.ArgumentParser) -> None:
    if not sys.platform.startswith("linux") or shutil.which("perf") is None:
        parser.error("needs Linux and `perf` (Debian: apt install linux-perf)")


@contextlib.contextmanager
def perf_recording(args: list[str]):
    """`perf ARGS` (a recording) running for the block, stopped with SIGINT so it writes its file."""
    proc = subprocess.Popen(["perf", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # perf needs a moment to set its tracepoints or probes up
    if proc.poll() is not None:
        raise SystemExit(f"perf {' '.join(args[:2])} failed: {proc.stderr.read().decode().strip()[-400:]} (it needs "
                         "root or kernel.perf_event_paranoid <= -1)")
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def analyse(data: str, server_pid: int, threads: int) -> Profile:
    def perf(*args: str) -> str:
        return subprocess.run(["perf", *args, "-i", data], capture_output=True, text=True, check=True).stdout

    return summarise(parse_timehist(perf("sched", "timehist")), parse_switches(perf("script", "-F", "trace")),
                     server_pid, os.getpid(), threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jarvis bench --suite sched-profile", description=__doc__.splitlines()[0])
    p.add_argument("--peer-server", default="", help="a llama-server binary to profile beside JARVIS")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="one more JARVIS server with these JARVIS_* (or other) environment settings")
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2, help="loads per recording")
    p.add_argument("--repeat", type=int, default=1, help="recordings per server, alternating")
    p.add_argument("--threads", type=int, default=0, help="compute threads per server (default: the cores)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    require_perf(p)
    variants = parse_variants(p, args.variant)
    threads = args.threads or auto_threads()
    servers = [("jarvis", {}), *variants.items()] + ([("llama-server", None)] if args.peer_server else [])
    say = (lambda *_: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    results: dict[str, list[dict]] = collections.defaultdict(list)
    work = tempfile.mkdtemp(prefix="jarvis-sched-")
    with open(os.path.join(work, "servers.log"), "ab") as log:
        for rep in range(args.repeat):
            for name, env in (servers if rep % 2 == 0 else servers[::-1]):
                if env is None:
                    url, proc, _ = start_llama_server(args.peer_server, threads, parallel=PEER_SLOTS, ctx=PEER_CTX,
                                                      log=log, env=peer_env("jarvis"))
                    extra = dict(SAMPLING)
                else:
                    url, proc = start_jarvis(threads, env, log)
                    extra = {**SAMPLING, "cache": False}
                try:
                    asyncio.run(run_load(url, args.streams, MAX_TOKENS, extra, PROMPTS))  # warm-up
                    data = os.path.join(work, f"{name}-{rep}.data")
                    with perf_recording(["sched", "record", "-o", data]):
                        tokens, started = 0, time.perf_counter()
                        for _ in range(args.rounds):
                            tokens += asyncio.run(run_load(url, args.streams, MAX_TOKENS, extra, PROMPTS)).tokens
                        wall = time.perf_counter() - started
                    prof = analyse(data, proc.pid, threads)
                finally:
                    _stop(proc)
                os.unlink(data)
                row = {"tokens": tokens, "tok_s": round(tokens / wall, 1), **prof.as_dict()}
                results[name].append(row)
                say(f"{name:14s} {row['tok_s']:6.1f} tok/s  compute run {row['run_ms']} ms delay {row['delay_ms']} "
                    f"sleep {row['sleep_ms']} ({row['sleeps']} sleeps)  preempted by {row['preempted']}  "
                    f"other threads {row['server_other_ms']} ms")
    out = {"streams": args.streams, "rounds": args.rounds, "threads": threads, "servers": results}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
