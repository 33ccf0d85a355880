"""Fixtures for the desktop tests. pytest-qt knows nothing of qasync (qasync/pytest-qt #448): we
build the qasync QEventLoop ourselves over pytest-qt's QApplication, make it the running loop,
and drive async work by letting qtbot process Qt events until a condition holds (no sleeps)."""

from __future__ import annotations

import asyncio

import pytest

from jarvis.config import load_settings


@pytest.fixture
def qloop(qapp):
    from ui.async_bridge import new_event_loop

    loop = new_event_loop(qapp, already_running=True)  # sets it as the running loop
    asyncio.set_event_loop(loop)
    yield loop
    qapp.aboutToQuit.disconnect(loop._after_run_forever)
    # Not loop.stop(): it calls QApplication.exit(), which makes the next test's waits return at once.
    loop._QEventLoop__is_running = False
    loop._after_run_forever()
    asyncio.events._set_running_loop(None)
    loop.close()
    asyncio.set_event_loop(None)


class Driver:
    """Runs coroutines on the qasync loop from a test by processing Qt events until they finish."""

    def __init__(self, qtbot, loop) -> None:
        self.qtbot = qtbot
        self.loop = loop

    def run(self, coro, timeout_s: float = 120):
        task = self.loop.create_task(coro)
        self.qtbot.waitUntil(task.done, timeout=int(timeout_s * 1000))
        return task.result()

    def wait(self, condition, timeout_s: float = 120) -> None:
        self.qtbot.waitUntil(condition, timeout=int(timeout_s * 1000))


def points(curve) -> int:
    """How many points a pyqtgraph curve shows (its public getData); 0 when it has none."""
    x, _ = curve.getData()
    return 0 if x is None else len(x)


@pytest.fixture
def drive(qtbot, qloop) -> Driver:
    return Driver(qtbot, qloop)


@pytest.fixture
def ui_env(env) -> dict[str, str]:
    """Greedy, short answers: fast and repeatable on the shared 2-core machine."""
    return {**env, "JARVIS_GENERATION_TEMPERATURE": "0", "JARVIS_GENERATION_MAX_TOKENS": "24"}


@pytest.fixture
def ui_settings(ui_env):
    return load_settings(environ=ui_env)


@pytest.fixture
def make_desktop(drive, ui_settings):
    """Desktops over a Runtime (no HTTP unless asked); each is shut down at teardown, which
    closes its runtime, so no engine thread outlives the test."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from ui.app import Desktop
    from ui.main_thread_gc import MainThreadGC

    made = []

    def make(settings=None, *, http: bool = False, show: bool = True):
        desktop = Desktop(settings or ui_settings)
        made.append(desktop)
        if show:
            desktop.window.show()
        drive.run(desktop.start(http=http, warmup=False))
        return desktop

    yield make
    for desktop in made:
        drive.run(desktop.shutdown(), timeout_s=30)
        desktop.window.deleteLater()
    opened = len(made)  # each Desktop() took one hold of the GUI-thread collector
    made.clear()
    # The windows' deferred deletes, then each desktop's garbage collected here on the GUI thread
    # before automatic collection (on any thread) is back.
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    for _ in range(opened):
        MainThreadGC.release()
