"""The desktop's start-up and memory, from a fresh process each round. Not a test.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.desktop_start [--rounds 3]

Each round launches `python -m bench.desktop_start --child` (the desktop as `jarvis` starts it: one
QApplication, the qasync loop, Desktop with the bundled model and warm-up on, a fresh data folder)
and reports, from the launch (the parent's clock before it starts the child):
  - window drawn: the window's first paint event has been handled;
  - first token: a question sent as soon as the window is drawn (ChatView.send, what Enter in the
    composer does) shows its first token; the model loads meanwhile (warm-up began at start);
  - RSS with the window open, the model loaded and that answer done (psutil, children included).
With QT_QPA_PLATFORM=offscreen the window is drawn into memory, not onto a screen: a real display
adds its compositor's work. Prints a table and one JSON line (medians and ranges).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

QUESTION = "What is the capital of France?"


def child(launched: float, data_dir: str) -> dict:
    import asyncio

    import psutil
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    from jarvis.config import load_settings
    from ui.app import Desktop
    from ui.async_bridge import new_event_loop

    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
    env.update({"JARVIS_GENERAL_DATA_DIR": data_dir, "JARVIS_MODELS_WARMUP": "default",
                "JARVIS_SERVER_ENABLED": "false", "JARVIS_GENERATION_TEMPERATURE": "0",
                "JARVIS_GENERATION_MAX_TOKENS": "8"})
    app = QApplication.instance() or QApplication([])
    loop = new_event_loop(app)
    asyncio.set_event_loop(loop)
    out: dict = {}

    class FirstPaint(QObject):
        def __init__(self, window) -> None:
            super().__init__()
            self.window = window
            self.painted = asyncio.Event()

        def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
            if event.type() == QEvent.Type.Paint and not self.painted.is_set() and obj is self.window:
                loop.call_soon(self.painted.set)  # after this paint pass is handled
            return False

    async def run() -> None:
        desktop = Desktop(load_settings(environ=env))
        painted = FirstPaint(desktop.window)
        desktop.window.installEventFilter(painted)
        desktop.window.resize(1280, 820)
        desktop.window.show()
        start = asyncio.ensure_future(desktop.start())
        try:
            await asyncio.wait_for(painted.painted.wait(), 120)
            out["window_drawn_s"] = time.time() - launched
            answer = await desktop.chat.send(QUESTION)
            while not answer.first_token:
                await asyncio.sleep(0.005)
            out["first_token_s"] = time.time() - launched
            await answer.task
            await start
            await asyncio.sleep(1.0)  # settle, as the footprint bench does
            proc = psutil.Process()
            out["rss_mb"] = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
        finally:
            await desktop.shutdown()

    with loop:
        loop.run_until_complete(run())
    return out


def _summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--launched", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.launched, args.data_dir)), flush=True)
        return 0
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    from jarvis.bench.bytecode import compile_packages

    compile_packages("jarvis", "ui")  # as an installed wheel has them (jarvis/bench/bytecode.py)
    runs = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="jarvis-desktop-start-") as data_dir:
            launched = time.time()
            done = subprocess.run([sys.executable, "-m", "bench.desktop_start", "--child", "--launched", repr(launched),
                                   "--data-dir", data_dir], env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        res = json.loads(done.stdout.strip().splitlines()[-1])
        runs.append(res)
        print(f"  round {r + 1}: window drawn {res['window_drawn_s']:.2f} s, first token {res['first_token_s']:.2f} s, "
              f"RSS {res['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    out = {"bench": "desktop_start", "rounds": args.rounds, "platform": env["QT_QPA_PLATFORM"],
           "load_average": [round(x, 2) for x in os.getloadavg()],
           **{k: _summary([r[k] for r in runs]) for k in ("window_drawn_s", "first_token_s", "rss_mb")}}
    print(f"desktop ({out['platform']}), {args.rounds} fresh launches, load average {out['load_average']}")
    for key, label in (("window_drawn_s", "launch -> window drawn (s)"), ("first_token_s", "launch -> first token (s)"),
                       ("rss_mb", "RSS, window open, model loaded (MB)")):
        s = out[key]
        print(f"  {label:<38} {s['median']:8.2f}  ({s['min']:.2f}–{s['max']:.2f})")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
