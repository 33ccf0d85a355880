"""The engine's worker wakes a loop through its doorbell (jarvis/engine/doorbell.py): an eventfd
written with the GIL kept, watched by the loop with add_reader. Proven by what runs and what is
counted, never by timing."""

from __future__ import annotations

import asyncio
import ctypes
import threading

from jarvis.engine import doorbell
from jarvis.engine.doorbell import Doorbell
from jarvis.engine.mailbox import Mailbox, StepWaker

from tests.support.assistant_loop import CountingLoop


def test_the_write_that_rings_keeps_the_gil():
    assert doorbell._write is not None  # Linux: there is an eventfd
    assert doorbell._write._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # a PyDLL call: it never releases the GIL


def test_a_step_from_the_worker_reaches_a_mailbox_made_on_the_loop_through_the_doorbell_not_the_self_pipe():
    loop = CountingLoop()

    async def main():
        waker = StepWaker()
        boxes = [Mailbox(loop, waker) for _ in range(3)]  # made on the loop's thread: the doorbell exists
        assert Doorbell.of(loop) is not None

        def step():
            with waker.hold():
                for i, box in enumerate(boxes):
                    box.put_text(f"token {i}")
                    box.finish(None)

        worker = threading.Thread(target=step)
        worker.start()
        got = [await box.get() for box in boxes]
        worker.join()
        return got, waker

    try:
        got, waker = loop.run_until_complete(main())
    finally:
        loop.close()
    assert [text for text, _ in got] == ["token 0", "token 1", "token 2"]
    assert waker.step_wakeups == 1 and loop.threadsafe_calls == 0  # one ring for the step, no self-pipe call


def test_a_failing_call_is_reported_and_the_rest_still_run():
    loop = asyncio.new_event_loop()
    seen, errors = [], []
    loop.set_exception_handler(lambda _, context: errors.append(context["exception"]))

    async def main():
        bell = Doorbell.for_loop(loop)
        done = asyncio.Event()

        def ring_from_a_thread():
            bell.ring([lambda: 1 / 0])
            bell.ring([lambda: seen.append("ran")])
            bell.ring([lambda: loop.call_soon(done.set)])

        threading.Thread(target=ring_from_a_thread).start()
        await done.wait()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen == ["ran"] and isinstance(errors[0], ZeroDivisionError)
