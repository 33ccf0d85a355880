"""The batching engine against the real bundled model."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import pytest

from jarvis.assistant import Assistant
from jarvis.errors import ContextOverflow, QueueFull
from jarvis.request import Message, Priority
from tests.support.until import until_async

PROMPTS = ["Count from 1 to 5.", "Name two fruits.", "What is 2 + 2?", "Say hello in French."]


def run(coro):
    return asyncio.run(coro)


async def with_assistant(settings, body, **overrides):
    if overrides:
        settings = settings.model_copy(update={"engine": settings.engine.model_copy(update=overrides)})
    a = Assistant(settings)
    try:
        await a.catalog.ready()  # the first scan: bodies ask for the default model by name
        return await body(a)
    finally:
        await a.close()


def greedy(a, text, **kw):
    kw.setdefault("max_tokens", 32)
    kw.setdefault("use_cache", False)
    return a.request(text, temperature=0, **kw)


def test_four_concurrent_streams_equal_each_prompt_decoded_alone(settings):
    async def body(a):
        alone = [(await a.chat(greedy(a, p))).text for p in PROMPTS]
        together = await asyncio.gather(*(a.chat(greedy(a, p)) for p in PROMPTS))
        return alone, together

    alone, together = run(with_assistant(settings, body))
    assert all(alone)
    assert [r.text for r in together] == alone


def test_batching_really_batches(settings):
    """Four requests in flight are decoded together: steps carry several slots' tokens (a
    StepRecord sums the steps since the one before; widest_decode is the most in one of them)."""
    from jarvis.telemetry import StepRecord

    async def body(a):
        steps = []
        a.bus.subscribe(lambda r: steps.append(r) if isinstance(r, StepRecord) else None)
        await asyncio.gather(*(a.chat(greedy(a, p)) for p in PROMPTS))
        return steps

    steps = run(with_assistant(settings, body))
    assert max(s.active_slots for s in steps) == 4
    assert max(s.widest_decode for s in steps) == 4


def test_fifth_request_waits_and_completes_and_full_queue_refuses_at_once(settings):
    async def body(a):
        reqs = [greedy(a, p, max_tokens=24) for p in PROMPTS + ["Name a colour.", "Name a planet."]]
        tasks = [asyncio.ensure_future(a.chat(r)) for r in reqs]
        await asyncio.sleep(0)
        # Let every task reach the engine: 4 in slots, 2 queued (max_queue = 2).
        engine = await wait_for_engine(a)
        await until_async(lambda: engine.active_slots + engine.queue_depth == 6)
        with pytest.raises(QueueFull) as e:
            await a.chat(greedy(a, "One more."))
        # At once: refused before any of the six (24 tokens each) finished and made room.
        finished_before_refusal = sum(t.done() for t in tasks)
        replies = await asyncio.gather(*tasks)
        return replies, finished_before_refusal, str(e.value)

    replies, finished_before_refusal, message = run(with_assistant(settings, body, max_queue=2))
    assert all(r.text for r in replies) and len(replies) == 6
    assert replies[4].record.queue_ms > 0
    assert finished_before_refusal == 0
    assert "queue is full" in message and "max_queue" in message


async def wait_for_engine(a, name=None):
    name = name or a.default_model()
    await until_async(lambda: a.manager.engine_of(name) is not None)
    return a.manager.engine_of(name)


def test_high_priority_starts_before_queued_low_ones(settings):
    async def body(a):
        order = []

        async def tracked(tag, req):
            reply = await a.chat(req)
            order.append(tag)
            return reply

        # batch_size 1: one slot, so the queue order decides who runs next.
        first = asyncio.ensure_future(tracked("first", greedy(a, "Count from 1 to 20.", max_tokens=40)))
        engine = await wait_for_engine(a)
        await until_async(lambda: engine.active_slots == 1)
        lows = [asyncio.ensure_future(tracked(f"low{i}", greedy(a, f"Say {i}.", max_tokens=4, priority=Priority.LOW)))
                for i in range(3)]
        await until_async(lambda: engine.queue_depth == 3)
        high = asyncio.ensure_future(tracked("high", greedy(a, "Say yes.", max_tokens=4, priority=Priority.HIGH)))
        await asyncio.gather(first, high, *lows)
        return order

    order = run(with_assistant(settings, body, batch_size=1))
    assert order[0] == "first" and order[1] == "high"


def test_cancelling_one_stream_leaves_the_others_correct_and_frees_its_slot(settings):
    """Freed, not left to run out: the tokens decoded from the victim's start until the engine is
    idle stay under the victim's own max_tokens (the three others decode at most 32 each)."""
    from jarvis.telemetry import StepRecord

    async def body(a):
        alone = [(await a.chat(greedy(a, p))).text for p in PROMPTS[:3]]
        victim_req = greedy(a, "Write a long story about a dragon.", max_tokens=200)
        decoded = []
        a.bus.subscribe(lambda r: decoded.append(r.decode_tokens) if isinstance(r, StepRecord) else None)

        async def consume_then_abandon():
            got = 0
            async for _ in a.stream(victim_req):
                got += 1
                if got == 3:
                    return  # leaving the iterator cancels the request

        others = [asyncio.ensure_future(a.chat(greedy(a, p))) for p in PROMPTS[:3]]
        await consume_then_abandon()
        results = await asyncio.gather(*others)
        engine = a.manager.engine_of(a.default_model())
        await until_async(lambda: engine.active_slots == 0)
        decoded_meanwhile = sum(decoded)
        again = await a.chat(greedy(a, PROMPTS[3]))
        return alone, [r.text for r in results], decoded_meanwhile, again

    alone, results, decoded_meanwhile, again = run(with_assistant(settings, body))
    assert results == alone
    assert decoded_meanwhile < 200, decoded_meanwhile
    assert again.text


def test_chat_turn_two_reuses_the_prefix_and_answers_like_a_cold_start(settings):
    """Turn 2 prefills only what turn 1 did not leave in the slot's KV cells, and the reused cells
    are the right ones: the answer starts as a cold start's does. Only the start is compared: the
    reused cells were computed in other batch shapes than a cold prefill, and llama.cpp does not
    promise bit-equal floats across shapes, so greedy answers may part ways many tokens later."""
    question = "Tell me about the moon."

    async def warm_body(a):
        history = [Message("user", question)]
        first = await a.chat(greedy(a, None, messages=history, max_tokens=48))
        history.append(Message("assistant", first.text))
        return first, await a.chat(greedy(a, "And the sun?", messages=history, max_tokens=24))

    first, warm = run(with_assistant(settings, warm_body))
    first_text = first.text

    async def cold_turn2(a):  # a fresh assistant: nothing cached
        msgs = [Message("user", question), Message("assistant", first_text)]
        return await a.chat(greedy(a, "And the sun?", messages=msgs, max_tokens=24))

    cold = run(with_assistant(settings, cold_turn2))
    assert cold.record.cached_prompt_tokens == 0
    assert warm.record.prompt_tokens == cold.record.prompt_tokens
    # At least turn 1's whole prompt was reused (its answer too, as far as it tokenizes the same).
    assert first.record.prompt_tokens <= warm.record.cached_prompt_tokens < warm.record.prompt_tokens
    assert warm.text.split()[:2] == cold.text.split()[:2], (warm.text, cold.text)


def test_stop_string_max_tokens_and_end_of_generation(settings):
    async def body(a):
        base = await a.chat(greedy(a, "Count from 1 to 10, separated by commas.", max_tokens=40))
        stopped = await a.chat(greedy(a, "Count from 1 to 10, separated by commas.", max_tokens=40, stop=["4"]))
        capped = await a.chat(greedy(a, "Write a long poem about the sea.", max_tokens=5))
        short = await a.chat(greedy(a, "Reply with just the word yes.", max_tokens=64))
        return base, stopped, capped, short

    base, stopped, capped, short = run(with_assistant(settings, body))
    assert "4" in base.text
    assert "4" not in stopped.text and base.text.startswith(stopped.text) and stopped.text
    assert stopped.record.finish_reason == "stop"
    assert capped.record.completion_tokens == 5 and capped.record.finish_reason == "length"
    assert short.record.finish_reason == "stop" and short.record.completion_tokens < 64


def test_multibyte_characters_arrive_whole(settings):
    """Emoji take several tokens each in this vocabulary; every streamed piece is whole, and a
    character cut off by max_tokens is dropped, never shown as a replacement character."""
    from jarvis.request import ChatRequest, SamplingParams

    async def body(a):
        results = []
        for max_tokens in (16, 17, 18):  # one of these ends in the middle of an emoji
            req = lambda: ChatRequest(prompt="🐉🔥" * 8, use_cache=False,  # noqa: E731
                                      sampling=SamplingParams(temperature=0, max_tokens=max_tokens, repeat_penalty=1.0))
            pieces = [c.text async for c in a.stream(req())]
            whole = (await a.chat(req())).text  # alone in the batch both times: the same shapes
            results.append((pieces, whole))
        return results

    for pieces, whole in run(with_assistant(settings, body)):
        text = "".join(pieces)
        assert "🐉" in text and "🔥" in text
        assert "\ufffd" not in text
        # Streaming only splits the answer between whole characters: nothing lost, nothing doubled.
        assert text == whole


def test_the_loaded_model_says_how_many_of_its_layers_are_on_the_gpu(settings, model_path):
    """The monitor's "GPU layers" column reads this: llama.cpp's own count ("offloaded 31/31 layers
    to GPU": SmolLM2-135M's 30 repeating layers and the output layer), not the -1 the setting asks."""
    from jarvis.engine import backend
    from jarvis.engine.handles import LlamaModel

    async def body(a):
        await a.chat(greedy(a, "Hi", max_tokens=2))
        return a.manager.loaded()

    settings = settings.model_copy(update={"gpu": settings.gpu.model_copy(update={"use_gpu": True})})
    [loaded] = run(with_assistant(settings, body))
    assert settings.gpu.gpu_layers == -1  # the default: every layer where a GPU is usable
    on_gpu = 31 if backend.supports_gpu_offload() else 0
    assert (loaded["gpu_layers"], loaded["layers"]) == (on_gpu, 31)
    for asked, expected in ((0, 0), (5, min(5, on_gpu)), (100, on_gpu)):
        model = LlamaModel(model_path, gpu_layers=asked)
        try:
            assert (model.offloaded_layers, model.offloadable_layers) == (expected, 31)
        finally:
            model.close()


def test_streaming_text_joins_split_utf8_from_the_real_vocabulary(settings, model_path):
    from jarvis.engine.handles import LlamaModel
    from jarvis.engine.text import StreamingText

    model = LlamaModel(model_path)
    try:
        original = "你好世界 🐉🔥 café"
        tokens = model.tokenize(original, add_special=False)
        pieces = [model.token_bytes(t) for t in tokens]
        assert any(len(p) and not _is_utf8(p) for p in pieces)  # the vocabulary really splits characters
        stream = StreamingText()
        out = [stream.feed(p) for p in pieces] + [stream.finish()]
        assert "".join(out) == original
        assert "\ufffd" not in "".join(out)
    finally:
        model.close()


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_prompt_longer_than_context_truncates_oldest_turns_or_fails(settings):
    long_turns = []
    for i in range(12):
        long_turns += [Message("user", f"Fact {i}: " + "the sky is blue " * 12), Message("assistant", "Noted.")]

    async def body(a):
        req = greedy(a, "Summarise.", messages=long_turns, system="You are terse.", max_tokens=16)
        truncated = await a.chat(req)
        with pytest.raises(ContextOverflow) as e:
            await a.chat(replace(req, truncate=False))
        return truncated, e.value

    truncated, error = run(with_assistant(settings, body, context_length=512))
    assert truncated.text and truncated.record.dropped_turns > 0
    assert truncated.record.prompt_tokens <= 512
    assert error.context_tokens == 512 and error.prompt_tokens > 512 - 16
    assert "512" in str(error)


def test_event_loop_keeps_ticking_while_four_streams_generate(settings):
    """The loop never runs a decode step: every step runs on the engine's worker thread (the step
    hook says which thread), and the loop's ticks interleave with the four streams' chunks. Proven
    by construction, not by a lag limit in milliseconds: how late a tick is depends on the machine
    and its load (the engine bench, jarvis/bench/engine_bench.py, measures the ticker's lateness)."""
    async def body(a):
        loaded = await a.manager.load(a.default_model())
        step_threads: set[int] = set()
        loaded.engine.step_hook = lambda engine: step_threads.add(threading.get_ident())
        chunks = 0
        chunks_at_ticks: list[int] = []
        stop = asyncio.Event()

        async def ticker():
            while not stop.is_set():
                await asyncio.sleep(0.01)
                chunks_at_ticks.append(chunks)

        async def consume(prompt):
            nonlocal chunks
            async for _ in a.stream(greedy(a, prompt, max_tokens=48)):
                chunks += 1

        tick = asyncio.ensure_future(ticker())
        await asyncio.gather(*(consume(p) for p in PROMPTS))
        stop.set()
        await tick
        return step_threads, threading.get_ident(), chunks_at_ticks, chunks

    step_threads, loop_thread, chunks_at_ticks, total = run(with_assistant(settings, body))
    assert step_threads and loop_thread not in step_threads
    assert total > len(PROMPTS)  # they streamed, more than one chunk each
    # Ticks ran mid-stream: after some chunks had arrived and before the last one did.
    assert any(0 < seen < total for seen in chunks_at_ticks), (chunks_at_ticks[:20], total)
