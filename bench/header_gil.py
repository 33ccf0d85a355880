"""What checking a model's GGUF header on another thread costs the thread that runs the window. Not a test.

    .venv/bin/python -m bench.header_gil [--rounds 6] [--model PATH]

Engine.load checks the header (jarvis/gguf_header.py: ~100k vocabulary and merge strings for
the bundled model) on the loader thread while the Qt/asyncio thread goes on. The main thread
here sleeps 1 ms in a loop and records how late each wake-up is, first while the other thread
parses the header, then (the baseline, same run, alternating) while the other thread sleeps as
long as that parse took. Pure-Python parsing holds the GIL the main thread needs to wake up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

from jarvis.catalog import bundled_model_path
from jarvis.gguf_header import read_header


def lateness_while(work) -> tuple[float, list[float]]:
    """(how long `work` took on another thread in ms, the main thread's wake-up lateness meanwhile)."""
    done = threading.Event()
    took: list[float] = []

    def run() -> None:
        t0 = time.perf_counter()
        work()
        took.append((time.perf_counter() - t0) * 1000)
        done.set()

    thread = threading.Thread(target=run)
    late: list[float] = []
    thread.start()
    while not done.is_set():
        t0 = time.perf_counter()
        time.sleep(0.001)
        late.append((time.perf_counter() - t0 - 0.001) * 1000)
    thread.join()
    return took[0], sorted(late)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--model", type=Path, default=None, help="a GGUF file (default: the bundled model)")
    args = p.parse_args(argv)
    path = args.model or bundled_model_path()
    read_header(path)  # the file in the page cache first
    parse_p99, idle_p99, parse_ms = [], [], []
    for r in range(args.rounds):
        took, late = lateness_while(lambda: read_header(path))
        _, idle = lateness_while(lambda: time.sleep(took / 1000))
        parse_ms.append(took)
        parse_p99.append(late[int(0.99 * (len(late) - 1))])
        idle_p99.append(idle[int(0.99 * (len(idle) - 1))])
        print(f"round {r + 1}: header parse {took:6.0f} ms; main-thread wake-up lateness P99 {parse_p99[-1]:6.1f} ms "
              f"(max {late[-1]:6.1f}) vs {idle_p99[-1]:5.1f} ms while the other thread sleeps", flush=True)
    print(f"\nmedians over {args.rounds} rounds: parse {statistics.median(parse_ms):.0f} ms; lateness P99 "
          f"{statistics.median(parse_p99):.1f} ms during the parse vs {statistics.median(idle_p99):.1f} ms baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
