"""The cache levels (jarvis/cache/): L2 on disk across restarts, the model file's identity, a
corrupt file set aside, the size cap, TTL by kind, and nothing written when the cache is off.
Real SQLite files, the real bundled model; a clock injected where time matters."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

from bench.support.settings import make_settings, tune

from jarvis.cache import CacheLevels, cache_key, cache_path
from jarvis.request import ChatRequest, Message, Reply, RequestRecord, SamplingParams
from jarvis.request_options import Grammar, RequestOptions
from jarvis.runtime import Runtime
from jarvis.telemetry import ModelRecord, StepRecord


def runtime_settings(data_dir: Path, models: Path, **cache):
    s = make_settings(data_dir, JARVIS_ENGINE_CONTEXT_LENGTH="512", JARVIS_SERVER_ENABLED="false",
                      JARVIS_TELEMETRY_ROLLUP_DAYS="0")
    s = tune(s, general={"models_dirs": [str(models)], "default_model": "a"}, cache=cache)
    return s


async def ask_once(settings, text: str = "Name a fruit.", **kw):
    """One Runtime start, one request, one close: (reply, engine steps, model loads) of that run."""
    rt = Runtime(settings)
    steps, loads = [], []
    rt.bus.subscribe(lambda r: steps.append(r) if isinstance(r, StepRecord) else
                     loads.append(r) if isinstance(r, ModelRecord) and r.event == "loaded" else None)
    await rt.start(http=False, warmup=False)
    try:
        reply = await rt.assistant.chat(rt.assistant.request(text, model="a", temperature=0, max_tokens=6, **kw))
        return reply, len(steps), len(loads)
    finally:
        await rt.close()


def test_an_answer_survives_a_restart_and_comes_from_disk_without_an_engine_step(tmp_path, model_copy):
    model_copy("a")
    settings = runtime_settings(tmp_path / "data", tmp_path / "models")
    first, first_steps, _ = asyncio.run(ask_once(settings))
    again, steps, loads = asyncio.run(ask_once(settings))  # a new process's view: a new Runtime, empty L1
    assert first.record.cache == "miss" and first_steps > 0
    assert again.record.cache == "disk" and again.text == first.text
    assert (steps, loads) == (0, 0)  # no engine step, not even a model load
    assert again.record.cache_hit  # a replay: counted as a hit, not as generated tokens


def test_a_replaced_model_file_never_serves_old_answers(tmp_path, model_copy):
    """Same path, same size, same mtime, other header bytes: the L2 key (header hash) differs."""
    path = model_copy("a")
    settings = runtime_settings(tmp_path / "data", tmp_path / "models")
    first, _, _ = asyncio.run(ask_once(settings))
    st = path.stat()
    data = bytearray(path.read_bytes())
    at = data.index(b"Smollm2 135M")  # general.name, a string in the header: the model still loads
    data[at:at + 7] = b"Smollm3"
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    again, steps, _ = asyncio.run(ask_once(settings))
    assert first.record.cache == "miss" and again.record.cache == "miss" and steps > 0


def test_a_corrupt_cache_file_is_set_aside_and_requests_still_succeed(tmp_path, model_copy, caplog):
    model_copy("a")
    data = tmp_path / "data"
    settings = runtime_settings(data, tmp_path / "models")
    file = cache_path(data)
    file.parent.mkdir(parents=True)
    file.write_bytes(b"this is not a database" * 100)
    reply, _, _ = asyncio.run(ask_once(settings))
    assert reply.record.status == "ok" and reply.text and reply.record.cache == "miss"
    aside = list(file.parent.glob("replies.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert any("set aside" in r.getMessage() for r in caplog.records)
    again, steps, _ = asyncio.run(ask_once(settings))  # the new file works
    assert again.record.cache == "disk" and steps == 0


def test_nothing_of_the_cache_is_written_when_it_is_off(tmp_path, model_copy):
    model_copy("a")
    data = tmp_path / "data"
    settings = runtime_settings(data, tmp_path / "models", enabled=False)
    replies = [asyncio.run(ask_once(settings)) for _ in range(2)]
    assert [r.record.cache for r, _, _ in replies] == ["off", "off"]
    assert not cache_path(data).parent.exists()


# ---- the levels on their own (real SQLite, no model run) ---------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def levels(tmp_path, model_path, clock=None, **cache) -> tuple[CacheLevels, SimpleNamespace]:
    settings = make_settings(tmp_path / "data")
    settings = tune(settings, cache=cache)
    info = SimpleNamespace(name="m", identity=(str(model_path), model_path.stat().st_size,
                                               model_path.stat().st_mtime_ns))
    return CacheLevels(settings.cache, settings.data_path, clock=clock), info


def request(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), sampling=SamplingParams(temperature=0, max_tokens=8), **kw)


def answer(text: str) -> Reply:
    return Reply(text, RequestRecord(request_id="r", model="m", finish_reason="stop"))


async def drain(cache: CacheLevels) -> None:
    await asyncio.wrap_future(cache.refresh_disk_figures())  # the disk thread is FIFO: earlier writes are done


def test_the_size_cap_holds_under_a_write_storm(tmp_path, model_path):
    async def body():
        cache, info = levels(tmp_path, model_path, disk_max_mb=0.05)  # 52 KB
        try:
            for i in range(400):  # ~2 KB each: 800 KB offered
                req = request(f"question {i}")
                cache.store(cache_key(req, info.identity), req, info, answer(f"answer {i} " + "x" * 2000))
            await drain(cache)
            figures = cache.stats().levels["disk"]
            newest = request("question 399")
            cache.memory.clear()
            hit = await cache.lookup(newest, cache_key(newest, info.identity), info)
            oldest = request("question 0")
            miss = await cache.lookup(oldest, cache_key(oldest, info.identity), info)
            return figures, hit, miss
        finally:
            await cache.close()

    figures, hit, miss = asyncio.run(body())
    assert 0 < figures["bytes"] <= 0.05 * 2**20 and figures["evictions"] > 300
    assert 0 < figures["entries"] < 30
    assert hit is not None and hit.level == "disk" and miss is None
    db = sqlite3.connect(cache_path(tmp_path / "data"))
    try:  # the counted bytes are what the file holds
        assert db.execute("SELECT SUM(bytes) FROM replies").fetchone()[0] == figures["bytes"]
    finally:
        db.close()
    assert cache_path(tmp_path / "data").stat().st_size < 0.05 * 2**20 * 4


def test_ttl_expires_by_kind_in_memory_and_on_disk(tmp_path, model_path):
    clock = Clock()
    ttl = {"ttl_s": 1000, "ttl_chat_s": 10, "ttl_completion_s": 50, "ttl_structured_s": 100}
    grammar = RequestOptions(grammar=Grammar('root ::= "{}"', "JSON"))
    kinds = {"chat": request("hello"),
             "completion": ChatRequest(prompt="Once upon a time", sampling=SamplingParams(temperature=0)),
             "structured": request("hello", options=grammar)}

    async def alive(cache, info, memory: bool) -> dict:
        if not memory:
            cache.memory.clear()
        out = {}
        for kind, req in kinds.items():
            hit = await cache.lookup(req, cache_key(req, info.identity), info)
            out[kind] = hit.level if hit else None
        return out

    async def body():
        cache, info = levels(tmp_path, model_path, clock=clock, **ttl)
        try:
            for kind, req in kinds.items():
                cache.store(cache_key(req, info.identity), req, info, answer(kind))
            await drain(cache)
            seen = []
            for now in (5, 11, 51, 101):
                clock.now = 1_000_000.0 + now
                seen.append((await alive(cache, info, memory=True), await alive(cache, info, memory=False)))
            return seen
        finally:
            await cache.close()

    at5, at11, at51, at101 = asyncio.run(body())
    assert at5 == ({"chat": "hit", "completion": "hit", "structured": "hit"},
                   {"chat": "disk", "completion": "disk", "structured": "disk"})
    assert at11[1] == {"chat": None, "completion": "disk", "structured": "disk"}
    assert at51[1] == {"chat": None, "completion": None, "structured": "disk"}
    assert at101[1] == {"chat": None, "completion": None, "structured": None}
    # The L1 keeps the same lifetimes (an entry promoted from disk gets its kind's TTL again).
    assert at11[0]["chat"] is None and at101[0] == {"chat": None, "completion": None, "structured": None}


def test_clear_by_model_and_a_locked_file_is_a_miss_not_an_error(tmp_path, model_path):
    async def body():
        cache, info = levels(tmp_path, model_path)
        other = SimpleNamespace(name="other", identity=info.identity[:2] + (1,))
        try:
            for who in (info, other):
                req = request("same question")
                cache.store(cache_key(req, who.identity), req, who, answer(who.name))
            await asyncio.wrap_future(cache.clear(model="m"))
            await drain(cache)
            req = request("same question")
            mine = await cache.lookup(req, cache_key(req, info.identity), info)
            theirs = await cache.lookup(req, cache_key(req, other.identity), other)
            locker = sqlite3.connect(cache_path(tmp_path / "data"), timeout=0)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                cache.memory.clear()
                await cache._on_disk(cache.disk._db.execute, "PRAGMA busy_timeout = 50")
                locked = await cache.lookup(req, cache_key(req, other.identity), other)
            finally:
                locker.rollback()
                locker.close()
            return mine, theirs, locked
        finally:
            await cache.close()

    mine, theirs, locked = asyncio.run(body())
    assert mine is None and theirs is not None and theirs.reply.text == "other"
    assert locked is None


def test_a_copy_of_the_model_has_the_same_identity_only_when_its_bytes_match(tmp_path, model_path):
    from jarvis.cache.identity import FileIdentities

    copy = tmp_path / "copy.gguf"
    shutil.copyfile(model_path, copy)
    ids = FileIdentities()
    same = ids.of((str(copy), 1, 1)) == ids.of((str(model_path), 2, 2))
    assert same and ids.reads == 2
    ids.of((str(copy), 1, 1))
    assert ids.reads == 2  # hashed once per (path, size, mtime)


def test_jarvis_cache_stats_and_clear_by_model(tmp_path, monkeypatch, capsys):
    import json

    from jarvis.cache.disk import DiskLevel
    from jarvis.cli import main

    data = tmp_path / "data"
    monkeypatch.setenv("JARVIS_GENERAL_DATA_DIR", str(data))
    disk = DiskLevel(cache_path(data), 2**20)
    for i, model in enumerate(("m1", "m1", "m2")):
        disk.put(f"k{i}", model, "chat", 60, answer(f"reply {i}"))
    disk.close()
    assert main(["cache", "stats", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["cache", "clear", "--model", "m1"]) == 0
    said = capsys.readouterr().out
    assert main(["cache", "stats", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert before["entries"] == 3 and {m: c for m, (c, _) in before["by_model"].items()} == {"m1": 2, "m2": 1}
    assert "Deleted 2 cached replies of m1" in said
    assert after["entries"] == 1 and list(after["by_model"]) == ["m2"] and 0 < after["bytes"] < before["bytes"]


def test_metrics_carry_each_level_and_the_level_that_answered():
    from jarvis.http.metrics import PrometheusMetrics

    levels = {"memory": {"entries": 2, "bytes": 1000, "hits": 5, "misses": 3, "evictions": 1},
              "disk": {"entries": 7, "bytes": 9000, "hits": 2, "misses": 1, "evictions": 4},
              "semantic": {"entries": 3, "bytes": 0, "hits": 1, "misses": 2, "evictions": 0}}
    source = SimpleNamespace(models_stats=lambda: {}, system_metrics=lambda: {},
                             cache_stats=lambda: {"levels": levels})
    m = PrometheusMetrics()
    for level in ("hit", "disk", "disk", "semantic", "miss"):
        m.observe(RequestRecord(request_id="r", model="m", cache=level, finish_reason="stop"))
    m.update_at_scrape(source)
    text = m.render().decode()
    assert 'jarvis_cache_level_entries{level="disk"} 7.0' in text
    assert 'jarvis_cache_level_evictions_total{level="disk"} 4.0' in text
    assert 'jarvis_cache_level_hits_total{level="semantic"} 1.0' in text
    assert 'jarvis_cache_answers_total{level="disk"} 2.0' in text
    assert "jarvis_cache_hits_total 4.0" in text and "jarvis_cache_misses_total 1.0" in text


def test_what_the_memory_level_evicts_is_served_from_disk(tmp_path, model_path):
    async def body():
        cache, info = levels(tmp_path, model_path, max_size=1)
        try:
            first, second = request("first question"), request("second question")
            for req in (first, second):  # the second pushes the first out of memory
                cache.store(cache_key(req, info.identity), req, info, answer(req.messages[-1].content))
            evicted = cache.memory.stats().evictions
            hit = await cache.lookup(first, cache_key(first, info.identity), info)
            again = await cache.lookup(first, cache_key(first, info.identity), info)
            return evicted, hit, again
        finally:
            await cache.close()

    evicted, hit, again = asyncio.run(body())
    assert evicted == 1
    assert hit.level == "disk" and hit.reply.text == "first question"
    assert again.level == "hit"  # promoted back into memory


def test_a_restarted_runtime_shows_what_the_disk_holds_before_any_request(tmp_path, model_copy):
    model_copy("a")
    settings = runtime_settings(tmp_path / "data", tmp_path / "models")
    asyncio.run(ask_once(settings))

    async def body():
        rt = Runtime(settings)
        await rt.start(http=False, warmup=False)
        try:
            for _ in range(500):  # counted on the cache's thread: wait for it, not for a time
                if rt.cache_stats()["levels"]["disk"]["entries"]:
                    break
                await asyncio.sleep(0.01)
            return rt.cache_stats()["levels"]
        finally:
            await rt.close()

    levels = asyncio.run(body())
    assert levels["disk"]["entries"] == 1 and levels["disk"]["bytes"] > 0 and levels["memory"]["entries"] == 0


def test_a_large_semantic_scope_finds_the_exact_nearest_and_its_exact_similarity():
    """Past SHORTLIST_FROM entries a lookup scans a projection first; on embedding-like vectors
    (fixed seed) it still returns the row an exact scan finds, with the exact similarity."""
    import numpy as np

    from jarvis.bench.cache_bench import embedding_like
    from jarvis.cache.semantic import SHORTLIST_FROM, VectorIndex

    vectors = embedding_like(SHORTLIST_FROM + 2000, 64 * 3)
    index = VectorIndex(vectors[:100])
    for row in vectors[100:]:  # grown one by one across the point where the projection starts
        index.add(row)
    rng = np.random.default_rng(7)
    for i in rng.integers(0, len(vectors), 50):
        q = vectors[i] + rng.standard_normal(vectors.shape[1]).astype(np.float32) * 0.01
        q /= np.linalg.norm(q)
        row, similarity = index.nearest(q)
        scores = vectors @ q
        assert row == int(np.argmax(scores)) and abs(similarity - float(scores[row])) < 1e-4
