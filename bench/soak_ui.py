"""Soak the desktop tests for native crashes. Not a test.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.soak_ui [--runs 20] [--busy 1] [pytest args]

Runs the UI test modules (tests/test_ui_*.py, or the pytest arguments given) `--runs` times in a
row, each in a fresh pytest process, while `--busy` other processes keep a core each busy (a
crash that needs a thread to lose its core shows up here first). A run whose process died of a
signal (segmentation fault, abort, bus error) is a crash: the summary counts them and prints
each one's stacks, which pytest's faulthandler wrote (every thread, Python frames). Test failures
that are not crashes are counted apart. The exit status is 1 when any run crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
FATAL = re.compile(r"^Fatal Python error: .*$", re.MULTILINE)


def ui_modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_ui_*.py"))


def crash_signal(returncode: int) -> signal.Signals | None:
    """The signal that killed the run: a negative return code (subprocess), or 128 + N (a shell)."""
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    try:
        sig = signal.Signals(number)
    except ValueError:
        return None
    return sig if sig in CRASH_SIGNALS else None


def stacks(output: str) -> str:
    """faulthandler's report: from 'Fatal Python error' to the end of the output."""
    match = FATAL.search(output)
    return output[match.start():] if match else "(no faulthandler report in the output)"


def one_run(pytest_args: list[str], log: Path, timeout_s: float) -> tuple[int, float]:
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
           "PYTHONFAULTHANDLER": "1", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    with open(log, "w") as out:
        try:
            rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "20")))
    p.add_argument("--busy", type=int, default=1, help="processes that each keep one core busy meanwhile")
    p.add_argument("--logs", type=Path, default=ROOT / ".soak", help="each run's output is kept here")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one run may take")
    args, pytest_args = p.parse_known_args(argv)
    pytest_args = pytest_args or ui_modules()
    args.logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the busy processes
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    crashes: list[tuple[int, signal.Signals, Path]] = []
    failed: list[tuple[int, int]] = []
    try:
        for i in range(1, args.runs + 1):
            log = args.logs / f"run-{i:03d}.log"
            rc, took = one_run(pytest_args, log, args.timeout)
            sig = crash_signal(rc)
            verdict = f"CRASHED ({sig.name})" if sig else "passed" if rc == 0 else f"failed (exit {rc})"
            print(f"run {i:3d} of {args.runs}: {verdict} in {took:.0f} s   {log}", flush=True)
            if sig:
                crashes.append((i, sig, log))
            elif rc != 0:
                failed.append((i, rc))
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    print(f"\n{len(crashes)} of {args.runs} runs crashed; {len(failed)} more failed without crashing "
          f"({args.busy} core(s) kept busy; {' '.join(pytest_args)})")
    for i, sig, log in crashes:
        print(f"\n==== run {i}: {sig.name} ({log}) ====\n{stacks(log.read_text(errors='replace'))}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
