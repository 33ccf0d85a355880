"""One mailbox per request: the worker thread drops text in, the asyncio side takes it out.

Deltas are merged while the consumer is busy, and the loop is woken at most once per batch of
deltas (one wake-up, not one per token), so a window that is painting
is never flooded with callbacks. Inside an engine step the wake-ups of every mailbox wait in the
engine's StepWaker and go out together just before the next llama_decode: the loop wakes once
per step, not once per stream (each wake-up on a small machine takes a core from a ggml worker, and a worker
that loses its core stalls the whole step at ggml's barrier). A wake-up rings the loop's
doorbell (doorbell.py) where the loop has one, else it is a `call_soon_threadsafe`.

A stream may also be paced (`ChatRequest.stream_interval_ms`, `engine.stream_interval_ms`): after
the loop has taken its text, the next text waits in the StepWaker until the interval has passed
(the first step's flush after it sends it), so each wake-up carries more tokens. Its first text,
its end, an error and a new place in line never wait. A window that paints once a frame gains
nothing from being woken more often; on a small machine each wake-up saved is CPU that ggml's
threads keep.

A reader that takes the reply whole (`ChatRequest.whole_reply`: a non-streamed API answer) gets
its text with the end: its text wakes nothing, so while it generates the loop is not woken for it
at all (llama-server's non-streamed replies likewise cost its HTTP threads nothing per token).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import TYPE_CHECKING, Callable

from jarvis.engine.doorbell import Doorbell
from jarvis.request_options import TokenLogprob

if TYPE_CHECKING:
    from jarvis.request import Timings


class StepWaker:
    """Holds the loop wake-ups asked for on its owner thread and hands them to each loop with one
    wake-up per flush (its doorbell, or `call_soon_threadsafe`). The engine's worker holds it for its whole life and flushes
    right before each llama_decode: the loop's share of a step (SSE writes, JSON) then runs while
    llama.cpp computes with the GIL released, not while the worker plans the next batch, which
    would wait for the GIL and leave ggml's workers idle. Any other thread (a cancel or a queue
    move on the loop) and the owner outside `hold()` wake at once, as before.

    A wake-up with a `due` time (a paced stream's text) waits past the flushes before it; `flush(
    force=True)` sends it at once (the worker is about to sleep, or to run a long prefill)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._owner: int | None = None  # the thread inside `hold()`, None otherwise
        self._held: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}
        # Paced wake-ups not due yet: callback -> (its loop, when it is due). Owner thread only.
        self._paced: dict[Callable[[], None], tuple[asyncio.AbstractEventLoop, float]] = {}
        # What the loop pays for, counted (tests prove "once per step" with them): every
        # wake-up posted, the flushes (one per step), and the calls made by them.
        self.wakeups = self.steps = self.step_wakeups = 0

    @contextlib.contextmanager
    def hold(self):
        """This thread's wake-ups wait until `flush()` or the end of the block."""
        self._owner = threading.get_ident()
        try:
            yield
        finally:
            self._owner = None
            self.flush(force=True)

    def flush(self, force: bool = False) -> None:
        """Post what is held, with the paced wake-ups that are due (all of them when `force`). A
        loop woken anyway takes its paced ones along, due or not: they cost no wake-up of their
        own then, and the streams of one loop fall into step with each other."""
        self.steps += 1
        if self._paced:
            now = self.clock()
            due = {loop for loop, at in self._paced.values() if force or at <= now}
            for callback, (loop, _) in list(self._paced.items()):
                if loop in due or loop in self._held:
                    del self._paced[callback]
                    self._held.setdefault(loop, []).append(callback)
        if not self._held:
            return
        held, self._held = self._held, {}
        for loop, callbacks in held.items():
            self.step_wakeups += 1
            self._post(loop, callbacks)

    def wake(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None], due: float = 0.0) -> None:
        """Run `callback` on `loop`: at the next flush, or at the first flush from `due` (a clock
        time) on. Asked again without `due`, a paced wake-up goes at the next flush."""
        if self._owner is not None and self._owner == threading.get_ident():
            if due:
                self._paced[callback] = (loop, due)
                return
            if self._paced:
                self._paced.pop(callback, None)  # a paced one asked again without `due`: it goes now
            self._held.setdefault(loop, []).append(callback)
        else:
            self._post(loop, [callback])

    def _post(self, loop: asyncio.AbstractEventLoop, calls: list[Callable[[], None]]) -> None:
        bell = Doorbell.of(loop)  # rung with the GIL kept (doorbell.py); else the loop's self-pipe
        self.wakeups += 1  # before the loop may run it: whoever it wakes sees it counted
        try:
            if bell is not None and not loop.is_closed():
                bell.ring(calls)
            else:
                loop.call_soon_threadsafe(_run_all, calls)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.wakeups -= 1


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


class Mailbox:
    def __init__(self, loop: asyncio.AbstractEventLoop, waker: StepWaker | None = None, pace_s: float = 0.0,
                 whole: bool = False):
        self._loop = loop
        self._waker = waker or StepWaker()
        self._pace_s = pace_s  # 0: text wakes the loop at the next flush; else at most once per pace_s
        self._whole = whole  # text wakes nothing: it goes with the end (or an error, or a place in line)
        self._text_due = 0.0  # a paced stream's next text waits until then (the waker's clock)
        self._wake_paced = False  # the pending wake-up waits for _text_due
        with contextlib.suppress(RuntimeError):  # made on the loop's own thread (add_reader), else none
            if asyncio.get_running_loop() is loop:
                Doorbell.for_loop(loop)
        self._lock = threading.Lock()
        self._waiter: asyncio.Future | None = None  # get()'s, while it waits (a bare future: a token's wake-up is the hot path)
        self._text: list[str] = []
        self._timings: Timings | None = None
        self._logprobs: list[TokenLogprob] = []
        self.logprobs: tuple[TokenLogprob, ...] = ()  # those taken with the text get() last returned
        self._error: BaseException | None = None
        self._wake_pending = False
        self._queue: tuple[int, float | None] | None = None  # (position, eta_s) not yet taken
        self.queue: tuple[int, float | None] | None = None  # the one get() returned last, if any
        self.closed = False

    # ---- worker side ----------------------------------------------------------------------
    def put_text(self, text: str) -> None:
        with self._lock:
            self._text.append(text)
            if not self._whole:
                self._schedule_wake(self._text_due)

    def put_logprobs(self, entry: TokenLogprob) -> None:
        """Rides with the next text (or the finish): no wake-up of its own."""
        with self._lock:
            self._logprobs.append(entry)

    def put_queue(self, position: int, eta_s: float | None) -> None:
        """The request's new place in line (from the queue, on whichever thread moved it)."""
        with self._lock:
            if self.closed:
                return
            self._queue = (position, eta_s)
            self._schedule_wake()

    def finish(self, timings: Timings) -> None:
        with self._lock:
            self._timings = timings
            self.closed = True
            self._schedule_wake()

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self.closed:
                return
            self._error = error
            self.closed = True
            self._schedule_wake()

    def _schedule_wake(self, due: float = 0.0) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            self._wake_paced = due > 0.0
            self._waker.wake(self._loop, self._wake, due)
        elif self._wake_paced and not due:  # the end, an error or the queue: the paced text goes with it now
            self._wake_paced = False
            self._waker.wake(self._loop, self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = self._wake_paced = False
            if self._pace_s:
                self._text_due = self._waker.clock() + self._pace_s
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---- asyncio side ---------------------------------------------------------------------
    async def get(self) -> tuple[str, Timings | None]:
        """Wait for news: (merged text, the finished request's timings or None). Raises the request's error.
        ("", None) with `self.queue` set: only the place in line changed (text makes it stale)."""
        while True:
            with self._lock:
                text = "".join(self._text)
                self._text.clear()
                if self._logprobs:
                    self.logprobs = tuple(self._logprobs)
                    self._logprobs.clear()
                else:
                    self.logprobs = ()
                timings, error = self._timings, self._error
                self.queue, self._queue = (self._queue, None) if not text and timings is None else (None, None)
            if error is not None and not text:
                raise error
            if text or timings is not None or self.queue is not None:
                if timings is not None:
                    self._timings = None
                return text, timings
            # Nothing new: wait for the next wake-up. Both run on the loop, so news that comes
            # after the check above rings _wake after this waiter exists.
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
