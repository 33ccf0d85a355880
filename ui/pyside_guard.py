"""A guard against a reference-counting bug of PySide6 6.12 on Python 3.11.

Measured here (PySide6 6.12.0, CPython 3.11.7): every time Qt calls back into Python (a slot, a
QTimer timeout, a Python override of a virtual such as timerEvent) and every `signal.emit()`, the
binding drops one reference to the singleton it returns (None, True or False) that it never took.
CPython 3.12+ makes these objects immortal, so the bug is invisible there; on 3.11 their counts
fall by one per callback until the process aborts with "Fatal Python error: none_dealloc" (or
bool_dealloc) after a few thousand callbacks: in this app, a few seconds of streaming.

The guard gives those objects what 3.12 gives them: a reference count so large that no run can
exhaust it (2**40 callbacks). They are statically allocated and never freed anyway, so nothing
else changes. It applies only to CPython before 3.12; upgrading Python (or a PySide6 release that
fixes the bug) makes it a no-op.
"""

from __future__ import annotations

import ctypes
import sys

_BOOST = 1 << 40
_applied = False


def immortalize_singletons() -> bool:
    """Apply once per process; returns whether anything was done."""
    global _applied
    if _applied or sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    for obj in (None, True, False, Ellipsis, NotImplemented, (), "", *range(-5, 257)):
        ctypes.c_ssize_t.from_address(id(obj)).value += _BOOST
    _applied = True
    return True
