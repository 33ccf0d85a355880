"""Loaded models (LRU eviction, keep-alive, shared loads) and the response cache, on the real model.
Copies of the bundled GGUF under other names are other models as far as JARVIS can tell."""

from __future__ import annotations

import asyncio

import pytest

from jarvis.assistant import Assistant
from jarvis.catalog import Catalog
from jarvis.errors import ModelLoadError
from jarvis.telemetry import ModelRecord
from tests.support.until import until_async


def make(settings, tmp_path, **models_overrides):
    if models_overrides:
        settings = settings.model_copy(update={"models": settings.models.model_copy(update=models_overrides)})
    settings = settings.model_copy(update={"engine": settings.engine.model_copy(update={"context_length": 512})})
    return Assistant(settings, catalog=Catalog([tmp_path / "models"], include_bundled=False))


def greedy(a, text, model, **kw):
    kw.setdefault("max_tokens", 8)
    return a.request(text, model=model, temperature=0, **kw)


def test_least_recently_used_idle_model_is_evicted(settings, tmp_path, model_copy):
    for name in ("a", "b", "c"):
        model_copy(name)

    async def body():
        a = make(settings, tmp_path, max_loaded_models=2)
        events = []
        a.bus.subscribe(lambda r: events.append((r.event, r.model)) if isinstance(r, ModelRecord) else None)
        try:
            await a.chat(greedy(a, "hi", "a"))
            await a.chat(greedy(a, "hi", "b"))
            await a.chat(greedy(a, "hi again", "a"))  # a is now more recent than b
            await a.chat(greedy(a, "hi", "c"))
            return sorted(m["name"] for m in a.manager.loaded()), events
        finally:
            await a.close()

    loaded, events = asyncio.run(body())
    assert loaded == ["a", "c"]
    assert ("unloaded", "b") in events and ("unloaded", "a") not in events[:-2]


def test_a_busy_model_is_never_evicted_the_request_waits(settings, tmp_path, model_copy):
    for name in ("a", "b"):
        model_copy(name)

    async def body():
        a = make(settings, tmp_path, max_loaded_models=1)
        events = []
        a.bus.subscribe(lambda r: events.append(f"{r.event} {r.model}") if isinstance(r, ModelRecord) else None)
        try:
            long = asyncio.ensure_future(a.chat(greedy(a, "Count from 1 to 30.", "a", max_tokens=60)))
            long.add_done_callback(lambda _: events.append("a answered"))
            await until_async(lambda: a.manager.engine_of("a") is not None and a.manager.engine_of("a").active_slots == 1)
            other = asyncio.ensure_future(a.chat(greedy(a, "hi", "b")))
            await until_async(lambda: "b" in a.manager.loading())  # b's request waits for room...
            b_waited_while_a_ran = not long.done()  # ...while a's answer still runs
            first = await long
            second = await other
            return b_waited_while_a_ran, events, first, second, [m["name"] for m in a.manager.loaded()]
        finally:
            await a.close()

    b_waited_while_a_ran, events, first, second, loaded = asyncio.run(body())
    assert b_waited_while_a_ran
    assert events.index("a answered") < events.index("unloaded a")  # a went only once it was idle
    assert first.record.completion_tokens > 10 and first.record.finish_reason in ("stop", "length")
    assert second.text and not second.record.warm_start
    assert loaded == ["b"]


def test_concurrent_requests_for_a_loading_model_load_it_once(settings, tmp_path, model_copy):
    model_copy("a")

    async def body():
        a = make(settings, tmp_path)
        loads = []
        a.bus.subscribe(lambda r: loads.append(r) if isinstance(r, ModelRecord) and r.event == "loaded" else None)
        try:
            replies = await asyncio.gather(*(a.chat(greedy(a, f"Say {i}.", "a")) for i in range(4)))
            return loads, replies
        finally:
            await a.close()

    loads, replies = asyncio.run(body())
    assert len(loads) == 1
    assert all(r.text for r in replies)
    assert sum(not r.record.warm_start for r in replies) == 4  # all waited on that one load
    assert all(r.record.model_load_ms > 0 for r in replies)


def test_keep_alive_unloads_an_idle_model(settings, tmp_path, model_copy):
    model_copy("a")

    async def body():
        a = make(settings, tmp_path, keep_alive_s=0.3)
        try:
            await a.chat(greedy(a, "hi", "a"))
            assert a.manager.engine_of("a") is not None
            await until_async(lambda: a.manager.engine_of("a") is None)
            again = await a.chat(greedy(a, "hi", "a", use_cache=False))
            return again
        finally:
            await a.close()

    again = asyncio.run(body())
    assert not again.record.warm_start  # it had to load again


def test_keep_alive_forever_keeps_it(settings, tmp_path, model_copy):
    model_copy("a")

    async def body():
        a = make(settings, tmp_path, keep_alive_s=-1)
        try:
            await a.chat(greedy(a, "hi", "a"))
            return a.manager.loaded()[0]["unloads_in_s"]
        finally:
            await a.close()

    assert asyncio.run(body()) is None


def test_a_corrupt_model_does_not_poison_the_manager(settings, tmp_path, model_copy, model_path):
    model_copy("good")
    (tmp_path / "models" / "bad.gguf").write_bytes(model_path.read_bytes()[:3_000_000])

    async def body():
        a = make(settings, tmp_path)
        try:
            with pytest.raises(ModelLoadError) as e:
                await a.chat(greedy(a, "hi", "bad"))
            good = await a.chat(greedy(a, "hi", "good"))
            return str(e.value), good
        finally:
            await a.close()

    message, good = asyncio.run(body())
    assert "bad.gguf" in message and "truncated" in message
    assert good.text


def test_cache_hit_replays_and_regenerate_bypasses(settings, tmp_path, model_copy):
    model_copy("a")

    async def body():
        a = make(settings, tmp_path)
        try:
            first = await a.chat(greedy(a, "Name a fruit.", "a"))
            chunks = [c async for c in a.stream(greedy(a, "Name a fruit.", "a"))]
            regenerated = await a.chat(greedy(a, "Name a fruit.", "a", use_cache=False))
            return first, chunks, regenerated, a.cache.stats()
        finally:
            await a.close()

    first, chunks, regenerated, stats = asyncio.run(body())
    assert first.record.cache == "miss"
    hit = chunks[-1].record
    assert hit.cache == "hit" and "".join(c.text for c in chunks) == first.text
    assert hit.inter_token_ms == () and hit.queue_ms == 0  # a replay generated nothing
    assert regenerated.record.cache == "off" and regenerated.text == first.text  # bypassed: not looked up
    assert stats.size == 1


def test_random_sampling_is_never_cached(settings, tmp_path, model_copy):
    model_copy("a")

    async def body():
        a = make(settings, tmp_path)
        try:
            replies = [await a.chat(a.request("Name a fruit.", model="a", temperature=0.8, seed=-1, max_tokens=8))
                       for _ in range(2)]
            return replies, a.cache.stats()
        finally:
            await a.close()

    replies, stats = asyncio.run(body())
    assert stats.size == 0 and [r.record.cache for r in replies] == ["off", "off"]


def test_identical_requests_in_flight_are_coalesced_and_one_leaving_does_not_stop_the_other(
        settings, tmp_path, model_copy):
    model_copy("a")

    async def body():
        a = make(settings, tmp_path)
        try:
            req = greedy(a, "Count from 1 to 10.", "a", max_tokens=40)

            async def leave_early():
                async for _ in a.stream(req):
                    return

            keep = asyncio.ensure_future(a.chat(req))
            await asyncio.sleep(0)
            await leave_early()
            kept = await keep
            alone = await a.chat(greedy(a, "Count from 1 to 10.", "a", max_tokens=40, use_cache=False))
            return kept, alone, a.cache.stats()
        finally:
            await a.close()

    kept, alone, stats = asyncio.run(body())
    assert kept.text == alone.text and kept.record.finish_reason in ("stop", "length")
    assert stats.coalesced == 1


def test_cache_evicts_least_recently_used_and_counts_it():
    from jarvis.cache import ResponseCache
    from jarvis.request import Reply, RequestRecord

    cache = ResponseCache(max_size=2, ttl_seconds=60)
    for key in ("k1", "k2", "k3"):
        cache.put(key, Reply(key, RequestRecord(request_id=key, model="m", finish_reason="stop")))
    assert cache.get("k1") is None and cache.get("k3").text == "k3"
    s = cache.stats()
    assert s.evictions == 1 and s.size == 2
    cache.clear()
    assert cache.stats().size == 0


def test_memory_budget_uses_free_gpu_memory_when_layers_go_to_the_gpu(settings):
    """With NVML faked (this machine has no NVIDIA GPU), the budget follows free GPU memory."""
    from tests.fake_nvml import GIB, FakeNvml

    from jarvis.engine import EngineConfig
    from jarvis.manager import MEMORY_MARGIN, ModelManager
    from jarvis.telemetry import RecordBus
    from jarvis.telemetry.gpu import GpuProbe

    gpu = ModelManager(Catalog([]), EngineConfig(gpu_layers=-1), RecordBus(), gpu=GpuProbe(nvml=FakeNvml()))
    cpu = ModelManager(Catalog([]), EngineConfig(gpu_layers=0), RecordBus(), gpu=GpuProbe(nvml=FakeNvml()))
    fixed = ModelManager(Catalog([]), EngineConfig(gpu_layers=-1), RecordBus(), memory_budget_bytes=5 * GIB)
    assert gpu._memory_budget() == int(2 * 77 * GIB * MEMORY_MARGIN)  # two fake devices, 77 GiB free each
    assert cpu._memory_budget() != gpu._memory_budget()
    assert fixed._memory_budget() == 5 * GIB
    for m in (gpu, cpu, fixed):
        asyncio.run(m.close())


def test_a_request_timeout_of_0_means_no_limit_in_the_load_as_in_the_engine(settings, tmp_path, model_copy):
    """One rule (request.resolve_timeout): a request's timeout_s of 0 is no limit, not "the setting",
    so a setting far too short for a model load does not apply to it anywhere."""
    model_copy("a")
    settings = settings.model_copy(update={"engine": settings.engine.model_copy(update={"request_timeout_s": 0.001})})

    async def body():
        a = make(settings, tmp_path)
        try:
            return await a.chat(greedy(a, "Name a fruit.", "a", timeout_s=0))
        finally:
            await a.close()

    reply = asyncio.run(body())
    assert reply.text and reply.record.status == "ok" and not reply.record.warm_start


def test_the_timeout_rule():
    from jarvis.request import resolve_timeout

    assert resolve_timeout(None, 300) == 300  # unset: the setting
    assert resolve_timeout(None, 0) is None  # the setting says no limit
    assert resolve_timeout(0, 300) is None  # the request says no limit
    assert resolve_timeout(5, 0) == 5


def test_a_request_that_bypasses_the_cache_is_neither_stored_nor_shared(settings, tmp_path, model_copy):
    """`cache: false` bypasses the response cache: its reply is not stored, and an identical
    request arriving meanwhile generates its own (nothing joins a generation that bypasses)."""
    model_copy("a")

    async def body():
        a = make(settings, tmp_path)
        try:
            bypass = greedy(a, "Count from 1 to 10.", "a", max_tokens=24, use_cache=False)
            first = asyncio.ensure_future(a.chat(bypass))
            await asyncio.sleep(0)
            cached = await a.chat(greedy(a, "Count from 1 to 10.", "a", max_tokens=24))  # looks up, then stores
            bypassed = await first
            again = await a.chat(greedy(a, "Count from 1 to 10.", "a", max_tokens=24))
            return bypassed, cached, again, a.cache.stats()
        finally:
            await a.close()

    bypassed, cached, again, stats = asyncio.run(body())
    assert bypassed.text == cached.text == again.text
    assert bypassed.record.cache == "off" and not bypassed.record.coalesced
    assert cached.record.cache == "miss" and not cached.record.coalesced  # it did not join the bypassing one
    assert again.record.cache == "hit" and stats.coalesced == 0


def test_a_streamed_reader_that_joins_a_whole_readers_generation_still_streams(settings, tmp_path, model_copy):
    """A reply taken whole (Assistant.chat, a non-streamed API answer) holds its text for the end,
    but a generation the cache shares may gain a streaming reader: it is generated as a stream.
    The engine's worker waits after the first token's step until the joined reader has its first
    chunk (a hang guard of 30 s only), so this is an order of events, not a race."""
    import threading

    model_copy("a")

    async def body():
        a = make(settings, tmp_path)
        try:
            engine = (await a.manager.load("a")).engine
            first_chunk = threading.Event()

            def hold_after_the_first_token(e):
                if any(s.sequence is not None and s.sequence.completion_tokens >= 1 for s in e._slots):
                    e.step_hook = None  # once
                    first_chunk.wait(30)

            engine.step_hook = hold_after_the_first_token
            req = greedy(a, "Count from 1 to 10.", "a", max_tokens=40, stream_interval_ms=0)
            whole = asyncio.ensure_future(a.chat(req))
            await asyncio.sleep(0)
            chunks = []
            async for chunk in a.stream(req):
                chunks.append(chunk)
                first_chunk.set()
            return await whole, chunks
        finally:
            await a.close()

    whole, chunks = asyncio.run(body())
    assert chunks[-1].record.coalesced and not chunks[0].done, [(c.text, c.done) for c in chunks]
    assert "".join(c.text for c in chunks) == whole.text and len(whole.text) > 10
