"""Python's cyclic garbage collector, run on the GUI thread only, while a desktop is open.

CPython collects cycles in whichever thread happens to allocate past the threshold: in this app
that is mostly the engine's thread (it makes objects for every step), or the store's, or an
executor's. A cycle that holds a Qt object (a widget and a closure over it, a card dropped from a
dict, a QTimer owned by a Python object) is then destroyed on that thread. Qt cannot stop a
timer from another thread, so the dead object's timer stays registered and fires into freed
memory on the GUI thread: a segmentation fault in `QTimerInfoList::activateTimers` ->
`QApplication::notify` (found by `make soak-ui`: the main thread in Qt's event loop, the engine
thread in `llama_decode`). pyqtgraph ships the same remedy (`util.garbage_collector`); this one
can be released again, which the tests need (and counts what it did).

Automatic collection is switched off while at least one holder exists, and a timer on the GUI
thread runs the collection CPython would have run: the oldest generation whose count passed its
threshold. Once the window is up, `freeze()` sets aside what start-up made (modules, classes,
widgets: ~130k objects), so a full pass on the GUI thread takes well under a millisecond instead
of ~60 ms; the last release() returns them to the collector.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QTimer

INTERVAL_MS = 250  # how long cyclic garbage may wait; a young-generation pass costs well under 1 ms


class MainThreadGC:
    """One guard per process, used through its class methods (never instantiated). Each hold()
    counts until its release(); the desktop never releases (its process ends), the tests do."""

    _holders = 0
    _timer: QTimer | None = None
    _automatic_before = True
    collections = [0, 0, 0]  # passes run by the timer, per generation

    @classmethod
    def hold(cls) -> None:
        """Called on the GUI thread, with a QApplication: collection moves here until release()."""
        if cls._holders == 0:
            cls._automatic_before = gc.isenabled()
            gc.disable()
            cls._timer = QTimer()
            cls._timer.setInterval(INTERVAL_MS)
            cls._timer.timeout.connect(cls.collect_due)
            cls._timer.start()
        cls._holders += 1

    @classmethod
    def freeze(cls) -> None:
        """The objects alive now stay out of every later pass (gc.freeze), while held."""
        if cls._holders:
            gc.freeze()

    @classmethod
    def release(cls) -> None:
        """Collect what is garbage now, here on the GUI thread; the last release restores
        automatic collection as it was."""
        if cls._holders == 0:
            return
        cls._holders -= 1
        if cls._holders == 0:
            gc.unfreeze()
        gc.collect()
        if cls._holders == 0:
            cls._timer.stop()
            cls._timer = None
            if cls._automatic_before:
                gc.enable()

    @classmethod
    def active(cls) -> bool:
        return cls._holders > 0

    @classmethod
    def holders(cls) -> int:
        """How many hold() calls are not released yet (one per open desktop)."""
        return cls._holders

    @classmethod
    def collect_due(cls) -> None:
        counts = gc.get_count()
        thresholds = gc.get_threshold()
        for generation in (2, 1, 0):  # CPython's choice: the oldest generation past its threshold
            if counts[generation] > thresholds[generation]:
                gc.collect(generation)
                cls.collections[generation] += 1
                return
