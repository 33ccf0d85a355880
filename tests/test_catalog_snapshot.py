"""The event loop never waits on the catalog: it reads an immutable snapshot, and scans (which parse
GGUF headers, ~100 ms a file) run on the catalog's own thread and replace it. Proved by
construction, not by timing: the catalog's lock refuses the loop thread, header parsing records
the thread it runs on, and with the lock held by someone else the loop still answers everything.
(The timing figure, /health P99 while 300 files are scanned, is jarvis/bench/catalog_bench.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading

import aiohttp
import pytest

import jarvis.catalog
import jarvis.catalog.scanner
from jarvis.catalog import Catalog, CatalogSnapshot
from jarvis.errors import CatalogNotReady, ModelNotFound

from bench.support.server import ServerThread
from bench.support.settings import make_settings


class LoopRefusingLock:
    """The catalog's lock, which fails (and remembers) any attempt to take it on the loop thread."""

    def __init__(self, loop_thread: threading.Thread) -> None:
        self._lock = threading.Lock()
        self._loop_thread = loop_thread
        self.loop_attempts = 0
        self.acquired = 0

    def __enter__(self):
        if threading.current_thread() is self._loop_thread:
            self.loop_attempts += 1
            raise AssertionError("the event loop tried to take the catalog's lock")
        self._lock.acquire()
        self.acquired += 1
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


@pytest.fixture
def parses(monkeypatch):
    """The thread of every GGUF header parse the catalog makes."""
    threads: list[threading.Thread] = []
    real = jarvis.catalog.scanner.read_gguf_info

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(jarvis.catalog.scanner, "read_gguf_info", recording)
    return threads


def test_the_loop_never_takes_the_catalog_lock_or_parses_and_a_new_file_appears(tmp_path, model_path, parses):
    models = tmp_path / "models"
    models.mkdir()
    os.link(model_path, models / "alpha.gguf")
    settings = make_settings(tmp_path / "data", JARVIS_GENERAL_MODELS_DIRS=str(models))
    with ServerThread(settings) as s:
        assistant = s.runtime.assistant
        catalog = assistant.catalog
        guard = catalog._lock = LoopRefusingLock(s.thread)
        catalog.rescan_interval_s = 0.05
        parses.clear()

        async def every_loop_side_reader():
            async with aiohttp.ClientSession(s.url) as session:
                for path in ("/api/models/stats", "/metrics", "/v1/models", "/v1/models/alpha"):
                    async with session.get(path) as r:
                        assert r.status == 200, path
                for model in ("", "alpha"):
                    async with session.post("/v1/chat/completions", json={
                            "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}) as r:
                        assert r.status == 200, model
                # A file dropped in while JARVIS runs is listed without a restart (the watch).
                os.link(model_path, models / "beta.gguf")
                for _ in range(3000):
                    async with session.get("/v1/models") as r:
                        if "beta" in {m["id"] for m in (await r.json())["data"]}:
                            break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("beta.gguf never appeared")

        asyncio.run(every_loop_side_reader())

        async def on_the_loop():
            return assistant.models(), assistant.default_model(), s.runtime.models_stats(), \
                (await assistant.manager.load("beta")).info.name

        listed, default, stats, loaded = s.call(on_the_loop())

    assert guard.loop_attempts == 0 and guard.acquired > 0  # scans ran, none on the loop
    assert parses and s.thread not in parses  # beta's header was read, off the loop
    assert {"alpha", "beta"} <= {m["name"] for m in listed} and loaded == "beta"
    assert default == "SmolLM2-135M-Instruct.Q4_1" and {m["name"] for m in stats["catalog"]} >= {"alpha", "beta"}


def test_the_loop_answers_while_a_scan_holds_the_lock(tmp_path, model_path):
    """Before, /api/models/stats, /metrics and default_model() scanned on the loop under this lock:
    a scan in progress (here: held forever) froze the whole endpoint and the window."""
    settings = make_settings(tmp_path / "data")
    with ServerThread(settings) as s:
        catalog = s.runtime.assistant.catalog
        with catalog._lock:  # a scan that takes as long as it likes

            async def read_everything():
                timeout = aiohttp.ClientTimeout(total=30)  # a failure detector, not a measurement
                async with aiohttp.ClientSession(s.url, timeout=timeout) as session:
                    statuses = {}
                    for path in ("/health", "/api/models/stats", "/metrics", "/v1/models"):
                        async with session.get(path) as r:
                            statuses[path] = r.status
                    async with session.post("/v1/chat/completions", json={
                            "model": "", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}) as r:
                        statuses["chat"] = r.status
                    return statuses

            statuses = asyncio.run(read_everything())
            names = s.call(asyncio.wait_for(_loop_side_names(s.runtime.assistant), 30))
    assert set(statuses.values()) == {200}
    assert s.model in names


async def _loop_side_names(assistant) -> list[str]:
    return [m["name"] for m in assistant.models()] + [assistant.default_model()]


def test_snapshots_are_immutable_and_replaced_whole(tmp_path, model_copy, parses):
    model_copy("one")
    catalog = Catalog([tmp_path / "models"], include_bundled=False)
    empty = catalog.snapshot()
    assert not empty.scanned and empty.models == ()  # never scanned: empty, without touching the disk
    assert parses == []
    first = catalog.rescan()
    assert catalog.snapshot() is first and first.scanned and [m.name for m in first.models] == ["one"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.models = ()  # type: ignore[misc]
    assert isinstance(first.models, tuple)

    model_copy("two")
    second = catalog.rescan()
    assert [m.name for m in first.models] == ["one"]  # a reader holding the old snapshot keeps it intact
    assert [m.name for m in second.models] == ["one", "two"]
    assert len(parses) == 2  # "one" was not parsed again

    (tmp_path / "models" / "one.gguf").unlink()
    assert [m.name for m in catalog.rescan().models] == ["two"]
    assert len(catalog._cache) == 1  # a removed file leaves the cache too


def test_lookup_rescans_once_for_a_name_it_lacks(tmp_path, model_copy, parses):
    model_copy("one")
    catalog = Catalog([tmp_path / "models"], include_bundled=False)

    async def body():
        try:
            catalog.rescan()
            found = (await catalog.lookup("one")).name
            scans_for_a_known_name = len(parses)
            model_copy("new")
            return found, scans_for_a_known_name, (await catalog.lookup("new")).name
        finally:
            catalog.close()

    found, scans, new = asyncio.run(body())
    assert found == "one" and scans == 1 and new == "new"


def test_an_unscanned_snapshot_says_it_is_still_reading_not_that_no_model_exists():
    with pytest.raises(CatalogNotReady, match="still reading the model folders"):
        CatalogSnapshot().default_name()
    with pytest.raises(CatalogNotReady):
        CatalogSnapshot().get("anything")
    assert CatalogSnapshot().default_name("configured") == "configured"
    with pytest.raises(ModelNotFound):
        CatalogSnapshot(scanned=True).default_name()


def test_many_new_files_are_read_in_a_child_process(tmp_path, model_path, parses):
    """More new files than IN_THREAD_MAX: the headers are read by `python -m jarvis.catalog.reader`
    (no parse in this process), with the same answers, broken files included."""
    models = tmp_path / "models"
    models.mkdir()
    for i in range(jarvis.catalog.IN_THREAD_MAX + 2):
        os.link(model_path, models / f"m{i}.gguf")
    (models / "broken.gguf").write_bytes(b"GGUF" + bytes(60))
    snapshot = Catalog([models], include_bundled=False).rescan()
    by_name = {m.name: m for m in snapshot.models}
    assert parses == []  # none on this process's threads
    assert len(by_name) == jarvis.catalog.IN_THREAD_MAX + 3
    assert "unsupported GGUF version" in by_name["broken"].error
    good = by_name["m0"]
    assert good.ok and good.path == models / "m0.gguf" and good.architecture == "llama"
    assert good == jarvis.catalog.read_gguf_info(models / "m0.gguf", "m0", str(models))
