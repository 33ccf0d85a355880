"""A worker that dies strands nothing: a deterministic fault raised inside a real engine step (the
real bundled model, between llama_decode and sampling) fails every running AND queued request at
once, the manager unloads the dead model, the next request loads it afresh, and the stats say so."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from jarvis.assistant import Assistant
from jarvis.catalog import Catalog
from jarvis.errors import EngineCrashed
from jarvis.telemetry import ModelRecord

from bench.support.server import ServerThread
from bench.support.settings import make_settings
from tests.support.until import until_async

LONG = {"prompt": "1, 2, 3, 4, 5,", "max_tokens": 300, "temperature": 0, "cache": False}


class InjectedFault(RuntimeError):
    pass


def arm_fault(engine) -> threading.Event:
    """The hook raises on the first step after the returned event is set: a fault at a known point."""
    armed = threading.Event()

    def hook(_engine) -> None:
        if armed.is_set():
            raise InjectedFault("injected by the test")

    engine.step_hook = hook
    return armed


def test_a_crash_fails_running_and_queued_requests_at_once_and_the_model_reloads(settings, tmp_path, model_copy):
    """batch_size 2, four requests: two decoding, two queued. Before, the queued two waited forever
    (nobody fails or times them out once the worker is dead) and max_loaded_models=1 then blocked
    every other model too."""
    model_copy("a")
    model_copy("b")
    settings = settings.model_copy(update={
        "engine": settings.engine.model_copy(update={"batch_size": 2, "context_length": 512}),
        "models": settings.models.model_copy(update={"max_loaded_models": 1})})

    async def body():
        a = Assistant(settings, catalog=Catalog([tmp_path / "models"], include_bundled=False))
        events: list[tuple[str, str, str]] = []
        a.bus.subscribe(lambda r: events.append((r.event, r.model, r.reason)) if isinstance(r, ModelRecord) else None)
        try:
            first = (await a.manager.load("a")).engine
            armed = arm_fault(first)
            requests = [a.request(f"Count to {n}.", model="a", temperature=0, max_tokens=300, use_cache=False)
                        for n in range(4)]
            tasks = [asyncio.ensure_future(a.chat(r)) for r in requests]
            await until_async(lambda: first.active_slots == 2 and first.queue_depth == 2)
            armed.set()
            results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
            assert first.queue_depth == 0 and first.active_slots == 0 and not first.busy
            await until_async(lambda: a.manager.engine_of("a") is None)  # unloaded, not left loaded and dead
            # Another model still gets the only place (max_loaded_models = 1): nothing waits on the dead one.
            other = await asyncio.wait_for(a.chat(a.request("Hi", model="b", temperature=0, max_tokens=2)), 60)
            again = await asyncio.wait_for(a.chat(a.request("Hi", model="a", temperature=0, max_tokens=2)), 60)
            second = a.manager.engine_of("a")
            return results, first, second, other, again, events, a.manager.crashes(), a.manager.loaded()
        finally:
            await a.close()

    results, first, second, other, again, events, crashes, loaded = asyncio.run(body())
    assert all(isinstance(r, EngineCrashed) for r in results), results
    assert "InjectedFault: injected by the test" in str(results[0]) and "send the request again" in str(results[0])
    assert ("crashed", "a", "InjectedFault: injected by the test") in events
    assert ("unloaded", "a", "crashed") in events
    assert other.record.completion_tokens > 0
    assert second is not None and second is not first and again.record.warm_start is False
    assert crashes["a"]["crashes"] == 1 and "InjectedFault" in crashes["a"]["last_error"]
    assert loaded[0]["name"] == "a" and loaded[0]["crashes"] == 1


def test_a_crashed_engine_refuses_new_work_with_the_reason(settings):
    async def body():
        a = Assistant(settings)
        try:
            await a.catalog.ready()  # the first scan (Assistant() no longer scans)
            engine = (await a.manager.load(a.default_model())).engine
            armed = arm_fault(engine)
            armed.set()
            try:
                await a.chat(a.request("Hi", temperature=0, max_tokens=4, use_cache=False))
            except EngineCrashed:
                pass
            # Until the manager's unload runs, the dead engine answers at once instead of queueing.
            try:
                engine.submit(a.request("Hi again", temperature=0, max_tokens=4))
            except EngineCrashed as e:
                return str(e)
            return "accepted"
        finally:
            await a.close()

    assert "InjectedFault" in asyncio.run(body())


def test_the_crash_shows_in_models_stats_metrics_and_http_errors(tmp_path):
    settings = make_settings(tmp_path, JARVIS_ENGINE_BATCH_SIZE="2")
    with ServerThread(settings) as s:
        first = s.engine()
        armed = arm_fault(first)

        async def four_requests():
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
                async def one(i):
                    async with session.post(s.base_url + "/completions", json={**LONG, "prompt": f"{i}, {i + 1},"}) as r:
                        return r.status, await r.json()
                tasks = [asyncio.ensure_future(one(i)) for i in range(4)]
                await until_async(lambda: first.active_slots == 2 and first.queue_depth == 2)
                armed.set()
                return await asyncio.gather(*tasks)

        answers = asyncio.run(four_requests())

        async def read_stats():
            async with aiohttp.ClientSession(s.url) as session:
                await until_async(lambda: s.runtime.assistant.manager.engine_of(s.model) is None)
                async with session.get("/api/models/stats") as r:
                    stats = await r.json()
                async with session.get("/metrics") as r:
                    metrics = await r.text()
                async with session.post("/v1/completions", json={**LONG, "max_tokens": 2}) as r:
                    after = r.status
            return stats, metrics, after

        stats, metrics, after = asyncio.run(read_stats())
        second = s.engine()

    assert [status for status, _ in answers] == [503] * 4
    assert {body["error"]["code"] for _, body in answers} == {"engine_crashed"}
    assert stats["crashes"] == 1
    assert stats["crashed_models"][s.model]["crashes"] == 1
    assert "InjectedFault" in stats["crashed_models"][s.model]["last_error"]
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    [sample] = [x for x in families["jarvis_engine_crashes"].samples if x.name == "jarvis_engine_crashes_total"]
    assert sample.labels == {"model": s.model} and sample.value == 1
    assert after == 200 and second is not None and second is not first


def test_an_engine_whose_worker_does_not_stop_is_stuck_not_unloaded(model_path):
    """A worker held inside a step (a deterministic hook) when close() gives up: the engine says so
    and keeps its llama.cpp handles (freeing a context a thread still uses would crash the process);
    once the worker comes out, close() finishes the job."""
    from jarvis.engine import Engine, EngineConfig
    from jarvis.request import ChatRequest, Message
    from jarvis.sampling import SamplingParams

    engine = Engine("smol", model_path, config=EngineConfig(batch_size=1, context_length=256, n_threads=1))
    engine.load()
    inside, release = threading.Event(), threading.Event()

    def hold(_engine) -> None:
        inside.set()
        release.wait(60)

    engine.step_hook = hold

    async def body() -> bool:
        seq = engine.submit(ChatRequest(messages=(Message("user", "Count to ten."),),
                                        sampling=SamplingParams(max_tokens=50, temperature=0)))
        await asyncio.get_running_loop().run_in_executor(None, inside.wait, 60)
        stopped = engine.close(timeout=0.05)  # the worker is inside the hook: it cannot stop
        held = engine.memory_bytes > 0
        release.set()
        engine.cancel(seq)
        return stopped, held

    stopped, held = asyncio.run(body())
    assert (stopped, held) == (False, True)
    assert engine.close(timeout=60) is True and engine.memory_bytes == 0
