"""How long the window stalls while a model loads and answers stream, and why; what the System
Monitor's refresh costs the Qt main thread (the asyncio loop). Not a test.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.ui_bench --view both --busy-core --rounds 3
    (make bench-ui)

Part 1, live: the desktop with the bundled model and its UI heartbeat (a precise QTimer every
telemetry.heartbeat_ms, 8 ms). Phases: start (model load + a first prompt), the first switch to
the System Monitor, then per round and per view (`--view chat|monitor|both`) 4 messages sent 50 ms
apart and the 4 answers streaming with that view on screen. `--busy-core` keeps one core busy
with a process of this session (a loaded CPU). Per phase: the worst beat's lateness, the P99,
the share of beats less than a frame (16 ms) late, and for the late ones WHY (bench/support/
ui_profile.py): the UI thread's own CPU time (Python/Qt work: the app's to fix), its time on the
kernel's run queue (runnable but not scheduled: the OS), or blocked (the GIL or a lock). Then the
calls that cost the UI thread most CPU (thread CPU time per Qt event and asyncio callback, nested
calls excluded; > 8 ms is an offender). The SUMMARY gives the streaming figures per view with
each round's P99/worst, and the same figures less the run queue's share (the stall the app
itself caused: on a shared machine the figure to hold against the targets).

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


def _p99(beats) -> float:
    late = sorted(b.late_ms for b in beats)
    return late[int(0.99 * (len(late) - 1))] if late else 0.0


PHASE_START = "start: model load + first prompt"


async def live(data_dir: str, rounds: int, max_tokens: int, views: list[str], profiler, split,
               worker_nice: int | None = None) -> dict:
    """The desktop on the bundled model: start (load + a first prompt), the first switch to the
    monitor, then `rounds` x `views` of 4 streams. Beats (with their CPU/run-queue split) per phase."""
    import asyncio

    from jarvis.config import load_settings
    from ui.app import Desktop

    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
    env.update({"JARVIS_GENERAL_DATA_DIR": data_dir, "JARVIS_MODELS_WARMUP": "default",
                "JARVIS_GENERATION_TEMPERATURE": "0", "JARVIS_GENERATION_MAX_TOKENS": str(max_tokens)})
    if worker_nice is not None:
        env["JARVIS_ENGINE_WORKER_NICE"] = str(worker_nice)
    profiler.phase = "building the window (before the heartbeat starts)"
    desktop = Desktop(load_settings(environ=env))
    window, chat, monitor = desktop.window, desktop.chat, desktop.monitor
    window.resize(1280, 820)
    window.show()
    await asyncio.sleep(0)  # the construction is its own callback, apart from the start
    desktop.heartbeat.timer.timeout.connect(split.beat)
    beats: dict[str, list] = {}

    def phase(name: str) -> None:
        """Beats and CPU from here on count for `name`."""
        beats.setdefault(profiler.phase, []).extend(split.take())
        profiler.phase = name

    profiler.phase = PHASE_START
    split.restart()
    await asyncio.ensure_future(desktop.start(http=False, warmup=True))  # its steps timed by name
    try:
        while not desktop.runtime.assistant.manager.loaded():
            await asyncio.sleep(0.05)
        first = await chat.send("Hello! Who are you?")
        while first is not None and not first.task.done():
            await asyncio.sleep(0.05)
        phase("idle")
        await asyncio.sleep(2.5)  # some history for the charts
        phase("first switch to the monitor")
        t0 = time.perf_counter()
        window.tabs.setCurrentWidget(monitor)
        window.repaint()  # the paint the switch causes, now instead of at the next event
        switch_ms = (time.perf_counter() - t0) * 1000
        await asyncio.sleep(0.5)
        per_round: dict[str, list[list]] = {v: [] for v in views}
        for n in range(rounds):
            for view in views:
                phase("sending 4 messages")
                answers = []
                for i in range(4):  # four messages sent 50 ms apart (as fast as clicks go), each its own callback
                    await chat.new_conversation()
                    answers.append(await chat.send(f"Write a short story about a robot, number {i + 1} of {n + 1} ({view})."))
                    await asyncio.sleep(0.05)
                window.tabs.setCurrentWidget(monitor if view == "monitor" else chat)
                phase(f"4 answers streaming, {view} on screen")
                while not all(a.task.done() for a in answers):
                    await asyncio.sleep(0.05)
                before = len(beats.get(profiler.phase, []))
                phase("between rounds")
                per_round[view].append(beats[f"4 answers streaming, {view} on screen"][before:])
        phase("end")
        return {"switch_ms": switch_ms, "beats": beats, "per_round": per_round}
    finally:
        await desktop.shutdown()


def _cpu_note() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=200, help="part 2, the refresh alone (0: skip it)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of 4 streams per view (0: skip the live part)")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--view", choices=["monitor", "chat", "both"], default="monitor",
                        help="the tab on screen while the 4 answers stream (both: alternating, each round)")
    parser.add_argument("--busy", type=int, default=0,
                        help="processes that each keep one core busy during the live part (a loaded CPU)")
    parser.add_argument("--busy-core", action="store_true", help="the same as --busy 1")
    parser.add_argument("--offenders", type=int, default=6, help="the costliest UI-thread calls listed per phase")
    parser.add_argument("--worker-nice", type=int, help="engine.worker_nice for this run (default: the setting's)")
    parser.add_argument("--json", help="also write the streaming figures per view to this file (bench.ui_compare)")
    args = parser.parse_args(argv)
    busy_n = max(args.busy, 1 if args.busy_core else 0)
    views = ["chat", "monitor"] if args.view == "both" else [args.view]

    from bench.support.ui_profile import BeatSplit, Profiler, install, split_summary

    profiler = Profiler()
    from PySide6.QtWidgets import QApplication

    # --offenders 0: no timing hook on every Qt event and callback (the figures without its cost)
    app = QApplication.instance() or (install(profiler) if args.offenders else QApplication)([])

    if args.rounds:
        import asyncio

        from jarvis.config import load_settings as _settings
        from ui.async_bridge import new_event_loop

        split = BeatSplit(_settings(environ={}).telemetry.heartbeat_ms)
        split.watch_others = bool(args.offenders)  # ~0.2 ms a beat: diagnostics only, off with --offenders 0
        loop = new_event_loop(app)
        asyncio.set_event_loop(loop)
        import subprocess

        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy_n)]
        load_before = os.getloadavg()[0]
        try:
            with tempfile.TemporaryDirectory() as data_dir, loop:
                result = loop.run_until_complete(live(data_dir, args.rounds, args.max_tokens, views, profiler, split,
                                                         args.worker_nice))
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
        print(f"Window responsiveness, live desktop, heartbeat every {split.interval_ms:g} ms "
              f"(load average {load_before:.1f} before, {_cpu_note()} after; {busy_n} kept busy by this bench)")
        print(f"  first switch to the monitor tab, switch + paint   {result['switch_ms']:6.2f} ms")
        names = list(dict.fromkeys(list(profiler.costs) + list(result["beats"])))
        for name in names:
            if name in ("end", "between rounds", "idle"):
                continue
            print(f"  {name}:")
            for line in split_summary(result["beats"].get(name, [])):
                print(f"      {line}")
            for line in profiler.report(name, args.offenders) if args.offenders else []:
                print(f"      {line}")
        print("\nSUMMARY (one line per view; per round: P99 / worst ms)")
        for view, rounds in result["per_round"].items():
            every = [b for r in rounds for b in r]
            per = ", ".join(f"{_p99(r):.0f}/{max((b.late_ms for b in r), default=0):.0f}" for r in rounds)
            print(f"  {view:8s} {split_summary(every)[0]}   rounds: {per}")
            for line in split_summary(every)[1:]:
                print(f"           {line}")
        if args.json:
            import json

            from bench.support.ui_profile import figures
            with open(args.json, "w") as f:
                json.dump({view: figures([b for r in rounds for b in r])
                           for view, rounds in result["per_round"].items()}, f)
    if not args.refreshes:
        return 0

    from jarvis.config import load_settings
    from jarvis.runtime import Runtime
    from jarvis.telemetry import RequestRecord
    from ui.monitor.monitor_view import MonitorView

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
