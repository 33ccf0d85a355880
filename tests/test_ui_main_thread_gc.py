"""Cyclic garbage is collected on the GUI thread while a desktop is open. Collected on the engine's
thread (where CPython's automatic collection usually lands), a cycle's Qt objects were destroyed
there and their timers fired into freed memory: the soak's segfault in QTimerInfoList."""

from __future__ import annotations

import gc
import threading

from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from ui.main_thread_gc import MainThreadGC


class Cycle:
    """Garbage only the cyclic collector can free; says on which thread that happened."""

    def __init__(self, freed_on: list) -> None:
        self.me = self
        self.freed_on = freed_on

    def __del__(self) -> None:
        self.freed_on.append(threading.current_thread())


def _garbage_then_busy_worker() -> list:
    """A cycle made garbage here, then a worker thread allocates well past every generation's
    threshold (keeping what it made, so the counts stay up): CPython's automatic collection runs
    on that worker unless it is off."""
    freed_on: list = []
    gc.collect()  # counts from zero: nothing here reaches a threshold before the worker starts
    Cycle(freed_on)
    kept: list = []
    worker = threading.Thread(target=lambda: kept.extend([i] for i in range(300_000)), name="busy-worker")
    worker.start()
    worker.join()
    freed_on.append(kept)  # alive until the caller is done
    return freed_on


def test_without_the_guard_a_worker_thread_collects_the_cycle(qapp):
    assert gc.isenabled() and not MainThreadGC.active()
    freed_on = _garbage_then_busy_worker()
    assert [t.name for t in freed_on if isinstance(t, threading.Thread)] == ["busy-worker"]


def test_with_a_desktop_open_cycles_are_collected_on_the_gui_thread(make_desktop, drive):
    make_desktop()
    assert MainThreadGC.holders() == 1 and not gc.isenabled()  # the open desktop holds the guard
    freed_on = _garbage_then_busy_worker()
    assert not [t for t in freed_on if isinstance(t, threading.Thread)]  # not on the worker
    before = sum(MainThreadGC.collections)
    drive.wait(lambda: any(isinstance(t, threading.Thread) for t in freed_on))  # the timer's pass
    assert [t for t in freed_on if isinstance(t, threading.Thread)] == [threading.main_thread()]
    assert sum(MainThreadGC.collections) > before
