"""The window's stalls, two checkouts alternating in one run (before/after a change). Not a test.

    .venv/bin/python -m bench.ui_compare BEFORE_DIR AFTER_DIR [--view chat] [--rounds 3] [--busy 1]

Each round runs `bench.ui_bench` (this checkout's bench, the other checkout's jarvis/ui) once per
checkout, in the order ABBA..., with one core kept busy by the bench, and prints both checkouts'
worst stall, P99, beats on time and the late beats' causes, with the load average of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_once(checkout: Path, view: str, busy: int, max_tokens: int, out: Path) -> dict:
    with tempfile.TemporaryDirectory() as shim:
        (Path(shim) / "bench").symlink_to(HERE)  # this bench, the checkout's code
        env = dict(os.environ, PYTHONPATH=f"{shim}{os.pathsep}{checkout}", QT_QPA_PLATFORM="offscreen")
        load = os.getloadavg()[0]
        subprocess.run([sys.executable, "-m", "bench.ui_bench", "--view", view, "--busy", str(busy),
                        "--rounds", "1", "--refreshes", "0", "--offenders", "0", "--max-tokens", str(max_tokens),
                        "--json", str(out)], env=env, cwd=shim, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = json.loads(out.read_text())[view]
        result["load"] = (load + os.getloadavg()[0]) / 2
        return result


def line(name: str, r: dict) -> str:
    return (f"{name:7s} worst {r['worst_ms']:6.1f}  P99 {r['p99_ms']:5.1f}  on time {r['on_time_pct']:5.1f} %  "
            f"late: UI code {r['late_ui_code']:.0f}, run queue {r['late_run_queue']:.0f}, blocked {r['late_blocked']:.0f}"
            f"  | less run queue: worst {r['own_worst_ms']:5.1f}  P99 {r['own_p99_ms']:4.1f}  "
            f"on time {r['own_on_time_pct']:5.1f} %  (load {r['load']:.1f})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--view", choices=["chat", "monitor"], default="chat")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--busy", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=160)
    args = p.parse_args(argv)
    got: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for name in order:
                got[name].append(run_once(getattr(args, name).resolve(), args.view, args.busy, args.max_tokens,
                                          Path(tmp) / f"{name}{r}.json"))
                print(f"round {r + 1}  {line(name, got[name][-1])}", flush=True)
    print(f"\n{args.view} on screen, 4 answers streaming, {args.busy} core(s) kept busy, {args.rounds} rounds (medians):")
    for name, runs in got.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"  {line(name, med)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
