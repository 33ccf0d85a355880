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
            # every token's text as it is made (unpaced), so each step has something to hand over
            chunks = [c async for c in a.stream(a.request(PROMPTS[0], temperature=0, max_tokens=24, use_cache=False,
                                                          stream_interval_ms=0))]
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


def test_a_paced_stream_waits_for_its_interval_but_never_its_first_text_or_its_end():
    """ChatRequest.stream_interval_ms: after the loop takes a paced stream's text, the next text
    waits in the StepWaker until the interval has passed, then goes at the next step's flush with
    all that came meanwhile. The end (and an error, a place in line) takes it along at once.
    The waker's clock is the test's, so this is a count, not a race."""
    loop = CountingLoop()
    clock = [10.0]
    waker = StepWaker(clock=lambda: clock[0])
    box = Mailbox(loop, waker, pace_s=0.050)
    done = object()  # stands for the finished request's Timings

    def deliver():  # the loop runs what it was handed: the box's wake-up starts its next interval
        loop.run_until_complete(asyncio.sleep(0))

    try:
        with waker.hold():  # this thread plays the engine's worker, each flush() a step
            box.put_text("a")
            waker.flush()
            assert loop.threadsafe_calls == 1  # the first text: at the first step
            deliver()
            assert loop.run_until_complete(box.get()) == ("a", None)
            box.put_text("b")
            waker.flush()
            clock[0] += 0.030
            box.put_text("c")
            waker.flush()
            assert loop.threadsafe_calls == 1  # 30 ms of 50: held
            clock[0] += 0.030
            waker.flush()
            assert loop.threadsafe_calls == 2  # due: one wake-up for both tokens
            deliver()
            assert loop.run_until_complete(box.get()) == ("bc", None)
            box.put_text("d")
            waker.flush()
            assert loop.threadsafe_calls == 2
            box.finish(done)
            waker.flush()
            assert loop.threadsafe_calls == 3  # the end does not wait, and the text goes with it
        deliver()
        assert loop.run_until_complete(box.get()) == ("d", done)

        other = Mailbox(loop, waker, pace_s=0.050)
        with waker.hold():
            other.put_text("x")
            waker.flush()
            deliver()
            assert loop.run_until_complete(other.get()) == ("x", None)
            other.put_text("y")
            waker.flush()
            assert loop.threadsafe_calls == 4
            waker.flush(force=True)  # the worker is about to sleep or to prefill: nothing waits
            assert loop.threadsafe_calls == 5
        deliver()
        assert loop.run_until_complete(other.get()) == ("y", None)
    finally:
        loop.close()


def test_a_paced_request_streams_the_same_reply_in_fewer_chunks(settings):
    """Through the real engine: a paced request whose interval never passes gets its first text at
    once and the rest with the end, two chunks; unpaced (stream_interval_ms 0), a chunk per step.
    The default setting (one frame, 16 ms) paces. Same text. The engine's waker reads a clock that
    stands still, so no machine is too slow for it."""
    async def body(a):
        await a.catalog.ready()
        waker = (await a.manager.load(a.default_model())).engine.waker

        async def chunks(**pace):
            request = a.request("Write a short story about a lighthouse keeper.", temperature=0, max_tokens=32,
                                use_cache=False, **pace)
            return [c.text async for c in a.stream(request) if c.text]

        clock, waker.clock = waker.clock, lambda: 0.0
        try:
            return await chunks(stream_interval_ms=0), await chunks(stream_interval_ms=1000), await chunks()
        finally:
            waker.clock = clock

    every_step, paced, default = with_assistant(settings, body)
    assert "".join(paced) == "".join(every_step) == "".join(default) and len("".join(paced)) > 20
    assert len(paced) == 2 and len(every_step) >= 10, (paced, every_step)
    assert settings.engine.stream_interval_ms == 16 and len(default) == 2


def test_a_stream_interval_out_of_range_is_a_clear_error():
    from jarvis.errors import InvalidRequest
    from jarvis.request import ChatRequest, Message

    import pytest

    for bad in (-1, 1001):
        with pytest.raises(InvalidRequest, match="stream_interval_ms"):
            ChatRequest(messages=(Message("user", "hi"),), stream_interval_ms=bad).validate()


def test_paced_streams_of_one_loop_go_with_any_wake_up_of_that_loop():
    """Four paced streams must not cost four wake-ups at four different steps: when the loop is
    woken anyway (another stream's due text, or an unpaced stream's), every paced stream of that
    loop goes with it, due or not."""
    loop = CountingLoop()
    clock = [10.0]
    waker = StepWaker(clock=lambda: clock[0])
    a, b = Mailbox(loop, waker, pace_s=0.050), Mailbox(loop, waker, pace_s=0.050)
    unpaced = Mailbox(loop, waker)

    def deliver():
        loop.run_until_complete(asyncio.sleep(0))

    try:
        with waker.hold():
            a.put_text("a1")
            waker.flush()
            deliver()  # a's interval starts at 10.00
            clock[0] += 0.020
            b.put_text("b1")
            waker.flush()
            deliver()  # b's at 10.02
            a.put_text("a2")
            b.put_text("b2")
            clock[0] += 0.035  # 10.055: a is due, b (10.07) is not
            waker.flush()
            assert loop.threadsafe_calls == 3  # one wake-up for both
            deliver()
            assert [loop.run_until_complete(box.get()) for box in (a, b)] == [("a1a2", None), ("b1b2", None)]
            a.put_text("a3")
            unpaced.put_text("u")
            waker.flush()  # the loop wakes for the unpaced stream: a's text rides along
            assert loop.threadsafe_calls == 4
            deliver()
            assert loop.run_until_complete(a.get()) == ("a3", None)
    finally:
        loop.close()


def test_a_whole_reply_wakes_the_loop_only_with_its_end():
    """ChatRequest.whole_reply (a non-streamed API answer): its text wakes nothing, however many
    steps pass or however long it waits; the end brings all of it, with its logprobs, at once."""
    loop = CountingLoop()
    waker = StepWaker(clock=lambda: 10.0)
    box = Mailbox(loop, waker, pace_s=0.016, whole=True)
    done = object()  # stands for the finished request's Timings
    try:
        with waker.hold():
            for piece in ("a", "b", "c"):
                box.put_text(piece)
                waker.flush()
            waker.flush(force=True)  # not even a prefill step or the worker going to sleep sends it
            assert loop.threadsafe_calls == 0
            box.finish(done)
            waker.flush()
            assert loop.threadsafe_calls == 1
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.run_until_complete(box.get()) == ("abc", done)
    finally:
        loop.close()


def test_a_whole_reply_is_the_streamed_reply_in_one_piece_for_one_wake_up(settings):
    """Through the real engine: the same greedy reply, taken whole, arrives as one chunk, and the
    loop was woken for it once (its end) instead of at every step. Its record's time to the first
    token is still when the first token was made, not when the reply ended."""
    async def body(a):
        await a.catalog.ready()
        waker = (await a.manager.load(a.default_model())).engine.waker

        async def run(**how):
            request = a.request("Write a short story about a lighthouse keeper.", temperature=0, max_tokens=32,
                                use_cache=False, stream_interval_ms=0, **how)
            before = waker.wakeups
            chunks = [c async for c in a.stream(request)]
            return chunks, waker.wakeups - before

        return await run(), await run(whole_reply=True)

    (streamed, streamed_wakeups), (whole, whole_wakeups) = with_assistant(settings, body)
    assert len(whole) == 1 and whole[0].done and whole[0].text == "".join(c.text for c in streamed)
    assert len(whole[0].text) > 20 and len(streamed) >= 10
    assert whole_wakeups == 1 and streamed_wakeups >= 10, (whole_wakeups, streamed_wakeups)
    record = whole[0].record
    assert record.completion_tokens == 32 and record.ttft_ms > 0
    # the first token, then 31 more in the decode time, all before the end: by construction, if
    # the time to the first token is the first token's and not the end's
    decode_ms = (record.completion_tokens - 1) / record.decode_tokens_per_s * 1000
    assert record.ttft_ms + decode_ms <= record.total_ms + 0.01, (record.ttft_ms, decode_ms, record.total_ms)
