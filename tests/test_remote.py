"""Remote engines against a real third-party OpenAI-compatible server: llama-cpp-python's own
`python -m llama_cpp.server` (the pinned 0.3.36, [server] extra) serving the bundled model, behind
a counting proxy that sees, server side, how many requests are upstream at once and whether a
client left early. JARVIS runs as it does for users: a Runtime with its HTTP endpoint, asked with
the official `openai` client."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import openai
import pytest

from jarvis.errors import QueueFull, RemoteError
from jarvis.request import Priority, RequestRecord
from jarvis.telemetry import StepRecord
from tests.support.remote_servers import CountingProxy, LlamaCppServer, read_two_events_then_leave, with_remote
from bench.support.server import ServerThread
from bench.support.settings import make_settings, tune
from tests.support.until import until

KEY = "sekret-4711"
SAMPLING = {"top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1}  # JARVIS's defaults, sent to the server as they are
GREEDY = {"temperature": 0, "extra_body": {**SAMPLING, "cache": False}}  # cache: JARVIS's own, off: no replays


@pytest.fixture(scope="module")
def llama_server(model_path):
    with LlamaCppServer(model_path) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_server(model_path):
    with LlamaCppServer(model_path, api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(llama_server):
    with CountingProxy(f"http://127.0.0.1:{llama_server.port}") as p:
        yield p


@pytest.fixture
def jarvis(tmp_path, proxy):
    """A JARVIS whose remote `lc` is the llama_cpp.server (through the proxy)."""
    settings = with_remote(make_settings(tmp_path), "lc", proxy.base_url, health_interval_s=3600)
    with ServerThread(settings, preload=False) as server:
        server.call(server.runtime.assistant.backends.get("lc").ensure_probed())
        proxy.reset()
        yield server


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_the_remote_s_models_are_in_the_catalog_and_v1_models(jarvis):
    models = {m.id: m.owned_by for m in client(jarvis).models.list().data}
    assert models["lc/smol"] == "lc"  # NAME/<model id>, owned by the remote
    assert any(owner == "jarvis" for owner in models.values())  # the local model is still there
    states = {m["name"]: m["state"] for m in jarvis.runtime.assistant.models()}
    assert states["lc/smol"] == "remote"


def test_chat_through_jarvis_equals_the_server_s_own_answer(jarvis, llama_server):
    """Greedy: the same server gives the same text asked directly or through JARVIS, whole or streamed."""
    ask = dict(messages=[{"role": "user", "content": "Say hello."}], max_tokens=10, **GREEDY)
    direct = openai.OpenAI(base_url=llama_server.base_url, api_key="x", max_retries=0)
    expected = direct.chat.completions.create(model="smol", **{**ask, "extra_body": SAMPLING}).choices[0].message.content
    c = client(jarvis)
    whole = c.chat.completions.create(model="lc/smol", **ask)
    assert whole.choices[0].message.content == expected and expected
    assert whole.model_extra["jarvis"]["backend"] == "lc" and whole.usage.completion_tokens > 0
    pieces = [e.choices[0].delta.content or "" for e in c.chat.completions.create(model="lc/smol", stream=True, **ask)
              if e.choices]
    assert "".join(pieces) == expected and len([p for p in pieces if p]) > 1  # streamed, not in one piece


def test_stop_strings_reach_the_server(jarvis, llama_server):
    ask = dict(messages=[{"role": "user", "content": "Say hello."}], max_tokens=16, **GREEDY)
    full = client(jarvis).chat.completions.create(model="lc/smol", **ask).choices[0].message.content
    stop = full.strip().split()[1]  # a word from the middle of the greedy answer
    cut = client(jarvis).chat.completions.create(model="lc/smol", stop=[stop], **ask)
    assert cut.choices[0].finish_reason == "stop"
    assert stop not in cut.choices[0].message.content and full.startswith(cut.choices[0].message.content)


def test_remote_requests_are_in_the_stats_and_metrics_with_their_backend(jarvis):
    c = client(jarvis)
    c.completions.create(model="lc/smol", prompt="1, 2, 3,", max_tokens=4, temperature=0)
    records, steps = [], []
    jarvis.runtime.bus.subscribe(lambda r: records.append(r) if isinstance(r, RequestRecord) else None)
    jarvis.runtime.bus.subscribe(lambda r: steps.append(r) if isinstance(r, StepRecord) else None)
    c.chat.completions.create(model="lc/smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    until(lambda: records)
    r = records[-1]
    assert (r.backend, r.model, r.status, r.completion_tokens > 0, r.ttft_ms > 0) == ("lc", "lc/smol", "ok", True, True)
    # The remote's occupancy reaches the "Queue and batch" chart as a local engine's steps do:
    # one request upstream, then none.
    assert [(s.model, s.active_slots, s.queue_depth) for s in steps if s.model == "lc"][-2:] == [("lc", 1, 0), ("lc", 0, 0)]
    log = jarvis.settings.request_log_path  # the request log, written on its own thread
    until(lambda: log.is_file() and log.read_text().count('"backend": "lc"') == 2)
    perf = jarvis.runtime.hub.perf  # percentiles per backend beside the totals
    assert perf.stats("backend.lc.ttft")["count"] == 2 and perf.counters()["requests.backend.lc"] == 2

    async def get(path):
        async with aiohttp.ClientSession() as s, s.get(jarvis.url + path) as resp:
            return await resp.text()

    metrics = asyncio.run(get("/metrics"))
    assert 'jarvis_requests_total{backend="lc",model="lc/smol",status="ok"} 2.0' in metrics
    stats = asyncio.run(get("/api/models/stats"))
    assert '"servers"' in stats and '"reachable": true' in stats.replace('":true', '": true')


def test_cancel_closes_the_upstream_stream(jarvis, proxy):
    """A client that leaves mid-stream: JARVIS closes its upstream request at once, so the server
    relays far fewer events than the 300 tokens asked for, and never finishes."""

    read_two_events_then_leave(jarvis.base_url, "lc/smol", 300)
    until(lambda: proxy.counts.requests and proxy.counts.requests[-1].client_left)
    entry = proxy.counts.requests[-1]
    assert not entry.finished and entry.events < 300


def test_max_concurrency_holds_upstream_and_the_queue_is_bounded(tmp_path, proxy):
    """8 requests at once to a remote with max_concurrency 2: never more than 2 upstream (counted by
    the proxy), all 8 answered. With engine.max_queue 3, 2 go upstream, 3 wait, 3 get QueueFull."""
    base = with_remote(make_settings(tmp_path), "lc", proxy.base_url, max_concurrency=2, health_interval_s=3600)

    async def burst(settings, n):
        from jarvis.assistant import Assistant

        a = Assistant(settings)
        try:
            reqs = [a.request(f"Count to {i}.", model="lc/smol", max_tokens=6, temperature=0, use_cache=False)
                    for i in range(n)]
            return await asyncio.wait_for(asyncio.gather(*(a.chat(r) for r in reqs), return_exceptions=True), 120)
        finally:
            await a.close()

    proxy.reset()
    replies = asyncio.run(burst(base, 8))
    assert all(not isinstance(r, BaseException) for r in replies), replies
    assert proxy.counts.max_in_flight == 2 and len(proxy.counts.requests) == 8

    proxy.reset()
    replies = asyncio.run(burst(tune(base, engine={"max_queue": 3}), 8))
    assert sum(isinstance(r, QueueFull) for r in replies) == 3
    assert sum(not isinstance(r, BaseException) for r in replies) == 5
    assert proxy.counts.max_in_flight <= 2 and len(proxy.counts.requests) == 5


def test_waiting_requests_go_upstream_by_priority(tmp_path, proxy):
    """max_concurrency 1: the first request goes up at once; of those that wait, high goes first."""
    settings = with_remote(make_settings(tmp_path), "lc", proxy.base_url, max_concurrency=1, health_interval_s=3600)

    async def run():
        from jarvis.assistant import Assistant

        a = Assistant(settings)
        try:
            order = [("first", Priority.NORMAL), ("low", Priority.LOW), ("normal", Priority.NORMAL),
                     ("high", Priority.HIGH)]
            reqs = [a.request(f"Say {word}.", model="lc/smol", max_tokens=3, temperature=0, use_cache=False,
                              priority=prio) for word, prio in order]
            await asyncio.wait_for(asyncio.gather(*(a.chat(r) for r in reqs)), 120)
        finally:
            await a.close()

    proxy.reset()
    asyncio.run(run())
    said = [re.search(rb"Say (\w+)\.", r.body).group(1).decode() for r in proxy.counts.requests]
    assert said == ["first", "high", "normal", "low"] and proxy.counts.max_in_flight == 1


def test_a_remote_model_as_the_default(tmp_path, proxy):
    """general.default_model = NAME/<id>: a request that names no model goes there; its warm-up
    loads nothing here, and loading it by hand says why not."""
    from jarvis.assistant import Assistant
    from jarvis.errors import InvalidRequest

    settings = tune(with_remote(make_settings(tmp_path), "lc", proxy.base_url, health_interval_s=3600),
                    general={"default_model": "lc/smol"}, models={"warmup": ["default"]})

    async def run():
        a = Assistant(settings)
        await a.start(warmup=True)
        try:
            reply = await asyncio.wait_for(a.chat(a.request("Hi", max_tokens=3, temperature=0, use_cache=False)), 60)
            with pytest.raises(InvalidRequest, match="served by 'lc'"):
                await a.manager.load("lc/smol")
            return reply, a.manager.loaded()
        finally:
            await a.close()

    reply, loaded = asyncio.run(run())
    assert reply.record.backend == "lc" and reply.record.model == "lc/smol" and loaded == []


def test_a_remote_that_wants_a_key(tmp_path, keyed_server, monkeypatch):
    """Without the key the server answers 401 and JARVIS says which remote refused and why; with
    api_key_env naming a variable that holds it, it works; the key shows up nowhere."""
    from jarvis.assistant import Assistant

    async def ask(settings):
        a = Assistant(settings)
        try:
            return await a.chat(a.request("Hi", model="k/smol", max_tokens=3, temperature=0, use_cache=False)), \
                a.backends.status()
        finally:
            await a.close()

    with pytest.raises(RemoteError) as e:
        asyncio.run(ask(with_remote(make_settings(tmp_path), "k", keyed_server.base_url)))
    assert e.value.upstream_status == 401 and "'k'" in str(e.value) and "api_key_env" in str(e.value)

    monkeypatch.setenv("TEST_REMOTE_KEY", KEY)
    settings = with_remote(make_settings(tmp_path), "k", keyed_server.base_url, api_key_env="TEST_REMOTE_KEY")
    reply, status = asyncio.run(ask(settings))
    assert reply.text and reply.record.backend == "k"
    assert KEY not in repr(status) and KEY not in repr(reply.record) and KEY not in settings.model_dump_json()
