"""What the System Monitor costs the Qt main thread (the asyncio loop), and how long the window
stalls while answers stream. Not a test.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.ui_bench [--refreshes 200] [--rounds 2] [--busy 1]

Part 1, live (the goal: under one frame, 16 ms): the desktop with the bundled model, its UI
heartbeat on (ui/heartbeat.py, telemetry.heartbeat_ms). Reported: the first switch to the
System Monitor tab (the switch and its paint, timed around them, and the worst heartbeat stall
in the half second after), then the worst UI stall while 4 answers stream at once with the
monitor on screen (`--view chat`: the chat on screen; every heartbeat's lateness, collected from the runtime's bus), and apart from
it the sending of those 4 messages (new conversation + send, 50 ms apart: the chat's own work).

Part 2, the refresh alone:

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


def _stalls(values: list[float]) -> str:
    if not values:
        return "no heartbeats"
    values = sorted(values)
    p99 = values[int(0.99 * (len(values) - 1))]
    over = sum(1 for v in values if v > 16.0)
    return (f"max {values[-1]:6.2f} ms   p99 {p99:6.2f} ms   over 16 ms: {over} of {len(values)} beats")


async def live(data_dir: str, rounds: int, max_tokens: int, view: str = "monitor") -> dict:
    """The desktop on the bundled model: the first tab switch, then `rounds` of 4 streams."""
    import asyncio

    from jarvis.config import load_settings
    from jarvis.telemetry import StallRecord
    from ui.app import Desktop

    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
    env.update({"JARVIS_GENERAL_DATA_DIR": data_dir, "JARVIS_MODELS_WARMUP": "default",
                "JARVIS_GENERATION_TEMPERATURE": "0", "JARVIS_GENERATION_MAX_TOKENS": str(max_tokens)})
    desktop = Desktop(load_settings(environ=env))
    window, chat, monitor = desktop.window, desktop.chat, desktop.monitor
    window.resize(1280, 820)
    window.show()
    collected: list[float] = []
    desktop.runtime.bus.subscribe(
        lambda r: collected.extend(r.stalls_ms) if isinstance(r, StallRecord) and r.source == "ui" else None)
    meter = desktop.heartbeat.meter
    await desktop.start(http=False, warmup=True)
    try:
        while not desktop.runtime.assistant.manager.loaded():
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.5)  # some history for the charts
        meter.flush()
        collected.clear()
        t0 = time.perf_counter()
        window.tabs.setCurrentWidget(monitor)
        window.repaint()  # the paint the switch causes, now instead of at the next event
        switch_ms = (time.perf_counter() - t0) * 1000
        await asyncio.sleep(0.5)
        meter.flush()
        after_switch = list(collected)
        streams: list[float] = []
        sends: list[float] = []
        for _ in range(rounds):
            collected.clear()
            answers = []
            for i in range(4):  # four messages sent 50 ms apart (as fast as clicks go), each its own callback
                await chat.new_conversation()
                answers.append(await chat.send(f"Write a short story about a robot, number {i + 1}."))
                await asyncio.sleep(0.05)
            window.tabs.setCurrentWidget(monitor if view == "monitor" else chat)
            meter.flush()
            sends.extend(collected)
            collected.clear()
            while not all(a.task.done() for a in answers):
                await asyncio.sleep(0.05)
            meter.flush()
            streams.extend(collected)
        return {"switch_ms": switch_ms, "after_switch": after_switch, "streams": streams, "sends": sends}
    finally:
        await desktop.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of 4 streams (0: skip the live part)")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--view", choices=["monitor", "chat"], default="monitor",
                        help="the tab on screen while the 4 answers stream")
    parser.add_argument("--busy", type=int, default=0,
                        help="processes that each keep one core busy during the live part (a loaded CPU)")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    if args.rounds:
        import asyncio

        from ui.async_bridge import new_event_loop

        app = QApplication.instance() or QApplication([])
        loop = new_event_loop(app)
        asyncio.set_event_loop(loop)
        import subprocess

        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            with tempfile.TemporaryDirectory() as data_dir, loop:
                result = loop.run_until_complete(live(data_dir, args.rounds, args.max_tokens, args.view))
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
        print(f"Window responsiveness, live desktop (CPU load average now {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores; {args.busy} kept busy by this bench)")
        print(f"  first switch to the monitor tab, switch + paint   {result['switch_ms']:6.2f} ms")
        print(f"  UI stalls in the 0.5 s after the switch            {_stalls(result['after_switch'])}")
        print(f"  UI stalls while 4 answers stream, {args.view} on screen ({args.rounds} rounds)  "
              f"{_stalls(result['streams'])}")
        print(f"  UI stalls while the 4 messages are sent            {_stalls(result['sends'])}")

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
        monitor.charts.finish_reveal()  # every chart painted from here on (no loop runs its reveal timer)
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
