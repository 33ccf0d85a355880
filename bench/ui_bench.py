"""What one System Monitor refresh costs the Qt main thread (the asyncio loop). Not a test.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.ui_bench [--refreshes 200]

The hub's history is filled to its full 600 points (one per second of a fake clock; real psutil
samples), 2 000 requests are recorded so the percentiles sort a real window, and the monitor is
on screen (offscreen platform). Reported: the refresh itself (what `monitor.last_refresh_ms`
measures: history -> arrays -> setData on every curve, tables), the paint that follows it, and
as a baseline in the same run the cost of `hub.history(600)` alone (the dict form of the history).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _summary(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[int(0.95 * (len(values) - 1))]
    return f"median {statistics.median(values):6.2f} ms   p95 {p95:6.2f} ms   max {values[-1]:6.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=200)
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from jarvis.config import load_settings
    from jarvis.runtime import Runtime
    from jarvis.telemetry import RequestRecord
    from ui.monitor.monitor_view import MonitorView

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(environ={"JARVIS_GENERAL_DATA_DIR": data_dir, "JARVIS_MODELS_WARMUP": ""})
        runtime = Runtime(settings)
        rng = random.Random(1)
        for i in range(2000):
            latency = rng.lognormvariate(6, 0.6)
            runtime.hub.perf.observe(RequestRecord(request_id=str(i), model="bench", total_ms=latency,
                                                   ttft_ms=latency / 8, completion_tokens=64,
                                                   decode_tokens_per_s=80, cache="hit" if i % 5 == 0 else "miss"))
        clock = [time.time() - 600]

        def fake_clock() -> float:
            clock[0] += 1.0
            return clock[0]

        runtime.hub._clock = fake_clock
        for _ in range(600):
            runtime.hub.tick()
        monitor = MonitorView(runtime, interval_ms=3_600_000)  # refreshed by hand here
        monitor.resize(1280, 780)
        monitor.show()
        app.processEvents()

        refresh, paint, history = [], [], []
        for _ in range(args.refreshes):
            runtime.hub.tick()  # one new point, as every second in the app (not timed)
            monitor.refresh()
            refresh.append(monitor.last_refresh_ms)
            t0 = time.perf_counter()
            monitor.repaint()  # the paint the refresh causes, done now instead of at the next event
            paint.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            runtime.hub.history(600)
            history.append((time.perf_counter() - t0) * 1000)
        points = len(runtime.hub.series.points(600))
        curves = sum(len(c.curves) for c in monitor.charts.charts.values())
        print(f"System Monitor refresh, {points} points x {curves} curves, {args.refreshes} refreshes "
              f"(CPU load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        print(f"  refresh (monitor.last_refresh_ms)  {_summary(refresh)}")
        print(f"  paint after it (repaint())         {_summary(paint)}")
        print(f"  baseline: hub.history(600) alone   {_summary(history)}")
        monitor.stop()
        runtime.hub.close()
        runtime.request_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
