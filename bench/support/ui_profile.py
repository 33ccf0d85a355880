"""Why the UI thread is late: its own CPU, the OS run queue, or blocked (the GIL). Bench support.

Two instruments for the Qt main thread (which is also the asyncio loop, through qasync):

- `BeatSplit` rides on the UI heartbeat (a precise QTimer every `heartbeat_ms`). For every gap
  between two beats it reads the thread's CPU time (`time.thread_time`) and the time it spent
  runnable on the kernel's run queue (`/proc/self/task/TID/schedstat`, field 2). The rest of the
  gap is time the thread was not runnable: idle until the timer was due, or blocked on a lock
  (the GIL, held by another thread). A late beat is charged to the larger of its three parts:
  "UI code" (Python/Qt work on the thread: the app's to fix), "run queue" (runnable, not
  scheduled: the OS; what nice/priority addresses), "blocked" (waiting for the GIL or a lock).

- `Profiler` attributes the thread's CPU time to what ran: every Qt event (a QApplication whose
  `notify` is timed) and every asyncio callback (`asyncio.Handle._run`, which qasync calls from
  its Qt timer events), each charged its own time (exclusive of what ran nested inside it).
  Thread CPU time, not wall time, so a busy machine does not inflate it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

FRAME_MS = 16.0
OFFENDER_MS = 8.0  # a callback/event costing more CPU than this is reported by name


def _runq_ns(tid: int) -> int | None:
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None  # not Linux, or no schedstats: the split shows run queue + blocked together


@dataclass
class Beat:
    late_ms: float
    cpu_ms: float
    runq_ms: float | None
    blocked_ms: float  # not runnable beyond the interval's idle: waiting for the GIL or a lock
    other: tuple[str, float] = ("", 0.0)  # the Python thread that waited longest on the run queue meanwhile

    @property
    def own_late_ms(self) -> float:
        """The lateness less the time on the run queue: the stall had the OS given the thread a
        core the moment it was runnable (its own work and GIL waits only). Other programs on a
        shared machine barely move it, so it is the figure to hold against the targets there."""
        return max(0.0, self.late_ms - (self.runq_ms or 0.0))

    @property
    def cause(self) -> str:
        parts = {"UI code": self.cpu_ms, "run queue": self.runq_ms or 0.0, "blocked": self.blocked_ms}
        return max(parts, key=parts.get)


class BeatSplit:
    """Connect `beat` to the heartbeat timer's timeout; `take()` returns the beats since the last take."""

    def __init__(self, interval_ms: float) -> None:
        self.interval_ms = interval_ms
        self.tid = threading.get_native_id()
        self._last: tuple[float, float, int | None] | None = None
        self._last_others: dict[str, int] = {}
        self.watch_others = True
        self.beats: list[Beat] = []

    def _now(self) -> tuple[float, float, int | None]:
        return time.perf_counter(), time.thread_time(), _runq_ns(self.tid)

    def _others(self) -> dict[str, int]:
        """Run-queue ns of the process's other Python threads (those that take the GIL): when the
        UI thread is blocked, one of them holding the GIL while the OS has it waiting is the cause."""
        got = {}
        for t in threading.enumerate():
            if t.native_id and t.native_id != self.tid:
                ns = _runq_ns(t.native_id)
                if ns is not None:
                    got[t.name] = ns
        return got

    def beat(self) -> None:
        others = self._others() if self.watch_others else {}
        now = self._now()
        if self._last is not None:
            wall = (now[0] - self._last[0]) * 1000
            cpu = (now[1] - self._last[1]) * 1000
            runq = None if now[2] is None or self._last[2] is None else (now[2] - self._last[2]) / 1e6
            waits = [(name, (ns - self._last_others[name]) / 1e6) for name, ns in others.items()
                     if name in self._last_others]
            self.beats.append(Beat(max(0.0, wall - self.interval_ms), cpu, runq,
                                   max(0.0, wall - cpu - (runq or 0.0) - self.interval_ms),
                                   max(waits, key=lambda w: w[1], default=("", 0.0))))
        self._last = now
        self._last_others = others

    def restart(self) -> None:
        self._last = None
        self.beats = []

    def take(self) -> list[Beat]:
        beats, self.beats = self.beats, []
        return beats


def _stats(values: list[float]) -> tuple[float, float, float]:
    """(worst, P99, % under a frame)."""
    late = sorted(values) or [0.0]
    return late[-1], late[int(0.99 * (len(late) - 1))], sum(1 for v in late if v < FRAME_MS) / len(late) * 100


def figures(beats: list[Beat]) -> dict:
    """The streaming figures as numbers: worst, P99, % on time (as measured, and without the run
    queue's share), and the late beats' causes."""
    worst, p99, on_time = _stats([b.late_ms for b in beats])
    own_worst, own_p99, own_on_time = _stats([b.own_late_ms for b in beats])
    over = [b for b in beats if b.late_ms >= FRAME_MS]
    return {"worst_ms": worst, "p99_ms": p99, "on_time_pct": on_time, "beats": len(beats),
            "own_worst_ms": own_worst, "own_p99_ms": own_p99, "own_on_time_pct": own_on_time,
            "late_ui_code": sum(b.cause == "UI code" for b in over),
            "late_run_queue": sum(b.cause == "run queue" for b in over),
            "late_blocked": sum(b.cause == "blocked" for b in over),
            "late_cpu_ms": sum(b.cpu_ms for b in over), "late_runq_ms": sum(b.runq_ms or 0.0 for b in over)}


def split_summary(beats: list[Beat]) -> list[str]:
    """The lines that say how late the beats were and why."""
    if not beats:
        return ["no heartbeats"]
    worst, p99, within = _stats([b.late_ms for b in beats])
    lines = [f"worst {worst:6.1f} ms   P99 {p99:6.1f} ms   beats on time (< 16 ms late) {within:5.1f} % "
             f"of {len(beats)}"]
    if all(b.runq_ms is not None for b in beats):
        worst, p99, within = _stats([b.own_late_ms for b in beats])
        lines.append(f"less the run queue's share (the app's own): worst {worst:6.1f} ms   P99 {p99:6.1f} ms   "
                     f"on time {within:5.1f} %")
    over = [b for b in beats if b.late_ms >= FRAME_MS]
    if over:
        causes: dict[str, list[Beat]] = defaultdict(list)
        for b in over:
            causes[b.cause].append(b)
        have_runq = all(b.runq_ms is not None for b in over)
        parts = []
        for cause in ("UI code", "run queue", "blocked"):
            group = causes.get(cause, [])
            if group:
                parts.append(f"{cause} {len(group)} (worst {max(b.late_ms for b in group):.0f} ms)")
        lines.append("late beats by cause: " + ", ".join(parts))
        cpu = sum(b.cpu_ms for b in over)
        runq = sum(b.runq_ms or 0.0 for b in over)
        blocked = sum(b.blocked_ms for b in over)
        waited = [b for b in causes.get("blocked", []) if b.other[1] > 0]
        if waited:
            worst = max(waited, key=lambda b: b.late_ms)
            lines.append(f"the worst blocked beat ({worst.late_ms:.0f} ms late, blocked {worst.blocked_ms:.0f} ms): "
                         f"meanwhile thread {worst.other[0]!r} waited {worst.other[1]:.0f} ms on the run queue "
                         f"(if it held the GIL, the OS kept both waiting)")
        lines.append(f"in those {len(over)} gaps the UI thread ran {cpu:.0f} ms (its own work), waited "
                     + (f"{runq:.0f} ms on the run queue (OS) and was blocked {blocked:.0f} ms beyond the beat's own idle (GIL/locks)"
                        if have_runq else f"{runq + blocked:.0f} ms (run queue + blocked; no schedstat)"))
    else:
        lines.append("no late beats")
    return lines


@dataclass
class Cost:
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    over: int = 0  # calls costing more than OFFENDER_MS


@dataclass
class Profiler:
    """CPU time of the UI thread per Qt event and asyncio callback, per phase."""

    phase: str = "start"
    costs: dict[str, dict[str, Cost]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Cost)))
    _stack: list[list] = field(default_factory=list)
    enabled: bool = True

    def enter(self, key: str) -> None:
        self._stack.append([key, time.thread_time(), 0.0])

    def leave(self) -> None:
        key, start, child = self._stack.pop()
        total = time.thread_time() - start
        own = (total - child) * 1000
        if self._stack:
            self._stack[-1][2] += total
        if self.enabled:
            cost = self.costs[self.phase][key]
            cost.count += 1
            cost.total_ms += own
            cost.max_ms = max(cost.max_ms, own)
            cost.over += own > OFFENDER_MS

    def top(self, phase: str, n: int = 8) -> list[tuple[str, Cost]]:
        items = sorted(self.costs.get(phase, {}).items(), key=lambda kv: (-kv[1].over, -kv[1].max_ms))
        return items[:n]

    def report(self, phase: str, n: int = 8) -> list[str]:
        rows = self.top(phase, n)
        total = sum(c.total_ms for c in self.costs.get(phase, {}).values())
        lines = [f"UI-thread CPU by what ran, {phase}: {total:.0f} ms in all; the costliest calls "
                 f"(own CPU, nested calls excluded)"]
        for key, c in rows:
            lines.append(f"    {c.over:4d} over {OFFENDER_MS:.0f} ms  max {c.max_ms:6.1f}  total {c.total_ms:7.1f} ms "
                         f"in {c.count:6d} calls  {key}")
        return lines


def _handle_name(handle: asyncio.Handle) -> str:
    cb = handle._callback
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', repr(coro))}"
    if isinstance(owner, asyncio.Future):
        return f"future callback {type(owner).__name__}"
    name = getattr(cb, "__qualname__", None) or type(cb).__name__
    if name.endswith("_run_pending"):
        return "call_soon_threadsafe batch"
    return f"callback {name}"


def install(profiler: Profiler):
    """Time every asyncio handle; returns the QApplication subclass that times every Qt event."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    original_run = asyncio.events.Handle._run
    main = threading.get_ident()

    def run(handle):
        if threading.get_ident() != main:
            return original_run(handle)
        profiler.enter(_handle_name(handle))
        try:
            return original_run(handle)
        finally:
            profiler.leave()

    asyncio.events.Handle._run = run

    def event_name(receiver, event) -> str:
        kind = event.type()
        kind = getattr(kind, "name", str(kind))
        if isinstance(receiver, QTimer):  # which timer: its owner says whose slot ran
            parent = receiver.parent()
            return f"QTimer of {type(parent).__name__ if parent is not None else '-'} ({receiver.interval()} ms)"
        return f"{type(receiver).__name__}: {kind}"

    class ProfilingApplication(QApplication):
        def notify(self, receiver, event):  # noqa: N802 (Qt's name)
            if threading.get_ident() != main:
                return super().notify(receiver, event)
            profiler.enter(event_name(receiver, event))
            try:
                return super().notify(receiver, event)
            finally:
                profiler.leave()

    return ProfilingApplication
