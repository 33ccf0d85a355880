"""The engine wakes the asyncio loop once per step for all of its streams, not once per token
(jarvis/engine/mailbox.py StepWaker): proven by counting the wake-ups, never by timing them."""

from __future__ import annotations

import asyncio
import threading

from jarvis.engine.mailbox import Mailbox, StepWaker

from tests.support.assistant_loop import PROMPTS, CountingLoop, with_assistant


def test_a_step_wakes_the_loop_once_for_every_mailbox_and_each_gets_its_text():
    loop = CountingLoop()
    try:
        waker = StepWaker()
        boxes = [Mailbox(loop, waker) for _ in range(4)]

        def one_step():
            with waker.hold():
                for i, box in enumerate(boxes):
                    box.put_text(f"a{i}")
                    box.put_text(f"b{i}")
                held = loop.threadsafe_calls  # nothing posted while the step runs

            return held

        worker = threading.Thread(target=lambda: results.append(one_step()))
        results: list[int] = []
        worker.start()
        worker.join()
        assert results == [0]
        assert loop.threadsafe_calls == 1 and waker.step_wakeups == 1 and waker.steps == 1

        async def take():
            return [await box.get() for box in boxes]

        assert loop.run_until_complete(take()) == [(f"a{i}b{i}", None) for i in range(4)]
    finally:
        loop.close()


def test_outside_a_step_or_from_another_thread_the_wake_up_goes_at_once():
    loop = CountingLoop()
    try:
        waker = StepWaker()
        box, other = Mailbox(loop, waker), Mailbox(loop, waker)
        box.put_text("x")  # no step running: at once
        assert loop.threadsafe_calls == 1
        inside, outside = threading.Event(), threading.Event()

        def step_on_a_worker():
            with waker.hold():
                inside.set()
                outside.wait(60)  # hang guard only

        worker = threading.Thread(target=step_on_a_worker)
        worker.start()
        inside.wait(60)
        other.put_text("y")  # this thread is not the one in the step (a cancel, a queue move)
        assert loop.threadsafe_calls == 2
        outside.set()
        worker.join()
        assert loop.threadsafe_calls == 2  # the step itself held nothing
        assert loop.run_until_complete(other.get()) == ("y", None)
    finally:
        loop.close()


def test_four_streams_wake_the_loop_at_most_once_per_step_and_stream_every_token(settings):
    async def body(a):
        await a.catalog.ready()
        loaded = await a.manager.load(a.default_model())
        waker = loaded.engine.waker

        async def consume(prompt):
            parts = []
            async for chunk in a.stream(a.request(prompt, temperature=0, max_tokens=48, use_cache=False)):
                parts.append(chunk.text)
            return "".join(parts)

        alone = [await consume(p) for p in PROMPTS]
        steps0, posts0, all0 = waker.steps, waker.step_wakeups, waker.wakeups
        together = await asyncio.gather(*(consume(p) for p in PROMPTS))
        return alone, together, waker.steps - steps0, waker.step_wakeups - posts0, waker.wakeups - all0

    alone, together, steps, step_wakeups, wakeups = with_assistant(settings, body)
    assert all(alone) and together == alone  # every token, in order, for every stream
    assert 0 < step_wakeups <= steps  # one wake-up per step at most, however many streams it served
    # The rest are not per token: a queue position or two per request, sent from the loop's thread.
    assert wakeups - step_wakeups <= 2 * len(PROMPTS), (wakeups, step_wakeups, steps)


def test_the_last_steps_text_is_posted_once_the_next_batch_is_planned_before_its_decode(settings):
    """The loop gets a step's text after the worker has planned its next batch and just before
    that batch's llama_decode (the GIL is free during it), so the loop's Python never delays the
    planning. Seen in the order of events: each post happens with the next decode's batch already
    in place (its first position), and nothing is held through a decode."""
    async def body(a):
        await a.catalog.ready()
        loaded = await a.manager.load(a.default_model())
        engine, waker = loaded.engine, loaded.engine.waker
        real_decode, real_post = engine._ctx.decode, waker._post
        events = []  # ("post" | "decode", the batch's first position, wake-ups held)

        def event(kind):
            events.append((kind, int(engine._batch.pos[0]), sum(len(c) for c in waker._held.values())))

        def decode(batch):
            event("decode")
            return real_decode(batch)

        def post(loop, *call):
            event("post")
            return real_post(loop, *call)

        engine._ctx.decode, waker._post = decode, post
        try:
            chunks = [c async for c in a.stream(a.request(PROMPTS[0], temperature=0, max_tokens=24, use_cache=False))]
        finally:
            engine._ctx.decode, waker._post = real_decode, real_post
        return events, chunks

    events, chunks = with_assistant(settings, body)
    assert "".join(c.text for c in chunks)
    decodes = [i for i, e in enumerate(events) if e[0] == "decode"]
    assert len(decodes) >= 10 and all(events[i][2] == 0 for i in decodes)
    handed_over = 0
    for before, i in zip(decodes[1:], decodes[2:]):  # every decode after the first token's
        posts = [e for e in events[before + 1:i] if e[0] == "post"]
        assert all(pos == events[i][1] for _, pos, _ in posts), events[before:i + 1]
        handed_over += bool(posts)
    # (a step whose token ends inside a UTF-8 character hands nothing over: most steps do)
    assert handed_over >= (len(decodes) - 2) // 2
