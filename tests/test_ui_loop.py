"""The desktop's event loop survives many callbacks. PySide6 6.12.0 on Python 3.11 drops a
reference to None/True/False per Qt callback and this script aborted with "Fatal Python error:
bool_dealloc" long before the end; 6.11.3 (pinned in pyproject.toml) does not. Run in a child
process, since that failure kills the interpreter."""

from __future__ import annotations

import subprocess
import sys

from tests.support.process import ROOT

QT_LOOP = """
import asyncio, os, threading
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
from ui.async_bridge import new_event_loop

app = QApplication([])
loop = new_event_loop(app)
asyncio.set_event_loop(loop)
"""  # the desktop's qasync loop, offscreen

SCRIPT = QT_LOOP + """
N = 40_000

async def main():
    done, seen = asyncio.Event(), [0]
    def callback(value):
        assert value is None or value is True
        seen[0] += 1
        if seen[0] == N:
            done.set()
    def worker(value):
        for _ in range(N // 4):
            loop.call_soon_threadsafe(callback, value)
    threads = [threading.Thread(target=worker, args=(v,)) for v in (None, True, None, True)]
    for t in threads:
        t.start()
    await asyncio.wait_for(done.wait(), 60)
    for t in threads:
        t.join()
    done.clear()
    seen[0] = 0
    for _ in range(N):
        loop.call_soon(callback, None)  # qasync: one QObject.timerEvent override call each
    await asyncio.wait_for(done.wait(), 60)
    cancelled = loop.call_soon_threadsafe(callback, None)
    cancelled.cancel()
    assert await loop.run_in_executor(None, lambda: 42) == 42
    await asyncio.sleep(0.05)
    return seen[0]

with loop:
    print(loop.run_until_complete(main()))
"""


def test_the_loop_survives_many_qt_callbacks():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "40000"


DOORBELL_SCRIPT = QT_LOOP + """
from jarvis.engine.doorbell import Doorbell
N = 20_000

async def main():
    bell = Doorbell.for_loop(loop)  # on the loop's thread, as a Mailbox makes it
    done, seen = asyncio.Event(), [0]
    def call():
        assert threading.current_thread() is threading.main_thread()
        seen[0] += 1
        if seen[0] == N:
            done.set()
    def worker():
        for _ in range(N // 4):
            bell.ring([call])
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    await asyncio.wait_for(done.wait(), 60)
    for t in threads:
        t.join()
    return type(bell).__name__, seen[0]

with loop:
    print(*loop.run_until_complete(main()))
"""


def test_the_engines_doorbell_rings_the_desktops_loop():
    """The engine wakes the desktop's qasync loop through an eventfd it watches (add_reader):
    every ring from worker threads runs its call on the GUI thread."""
    r = subprocess.run([sys.executable, "-c", DOORBELL_SCRIPT], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "Doorbell 20000"
