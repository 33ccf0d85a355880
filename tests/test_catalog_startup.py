"""Start-up never waits for the model files: `jarvis serve` answers while the first scan runs on
the catalog's thread, a request for the default model waits for that scan instead of hearing "no
such model", the header index makes a second start read no header that did not change, and the
catalog's header reads walk past the token strings. Proved by construction: a hook holds the scan,
parse counts (Catalog.headers_read) show what was read. (The timings, 300 files, before and after,
are jarvis/bench/catalog_bench.py --startup and --header.)"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import struct
import threading
import time

import aiohttp
import pytest

from jarvis.catalog import Catalog, index, read_gguf_info
from jarvis.gguf_header import GGUFError, read_header

from bench.support.settings import make_settings


def new_catalog(tmp_path) -> Catalog:
    """A catalog as a fresh start makes one: the same folder and index file, nothing in memory."""
    return Catalog([tmp_path / "models"], include_bundled=False, index_path=tmp_path / "data" / "model-index.json")


def test_a_second_start_reads_no_header_that_did_not_change(tmp_path, model_copy):
    for name in ("a", "b", "c"):
        model_copy(name)
    first = new_catalog(tmp_path)
    listed = first.rescan().models
    assert first.headers_read == 3 and (tmp_path / "data" / "model-index.json").is_file()

    second = new_catalog(tmp_path)
    assert second.rescan().models == listed  # the same answers, every field
    assert second.headers_read == 0
    assert [m.architecture for m in listed] == ["llama"] * 3 and all(m.has_chat_template for m in listed)


def test_a_file_whose_size_or_mtime_changed_is_read_again(tmp_path, model_copy):
    paths = {name: model_copy(name) for name in ("same", "touched", "grown")}
    new_catalog(tmp_path).rescan()
    st = paths["touched"].stat()
    os.utime(paths["touched"], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with open(paths["grown"], "ab") as f:
        f.write(b"\0" * 64)  # past the last tensor: still a valid model, another size

    again = new_catalog(tmp_path)
    by_name = {m.name: m for m in again.rescan().models}
    assert again.headers_read == 2  # "same" came from the index
    assert by_name["grown"].size_bytes == paths["grown"].stat().st_size and by_name["grown"].ok
    assert by_name["touched"].mtime_ns == paths["touched"].stat().st_mtime_ns
    third = new_catalog(tmp_path)
    assert third.rescan().models == tuple(by_name.values()) and third.headers_read == 0  # the index was rewritten


@pytest.mark.parametrize("content", [b"\x00\xff not json", b'{"format": %d, "models": [{"path": 3}]}' % index.FORMAT,
                                     b'{"format": %d, "models": ' % index.FORMAT, b'[1, 2, 3]'],
                         ids=["binary", "wrong-fields", "truncated", "wrong-shape"])
def test_a_corrupt_index_is_ignored_with_a_warning_and_replaced(tmp_path, model_copy, caplog, content):
    model_copy("one")
    model_copy("two")
    index = tmp_path / "data" / "model-index.json"
    index.parent.mkdir()
    index.write_bytes(content)
    catalog = new_catalog(tmp_path)
    with caplog.at_level(logging.WARNING, logger="jarvis.catalog"):
        models = catalog.rescan().models
    assert [m.name for m in models] == ["one", "two"] and all(m.ok for m in models)
    assert catalog.headers_read == 2
    assert any("model-index.json" in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)
    fresh = new_catalog(tmp_path)
    assert fresh.rescan().models == models and fresh.headers_read == 0  # the scan wrote a good one


def test_an_unwritable_data_folder_costs_the_index_not_the_catalog(tmp_path, model_copy, caplog):
    model_copy("one")
    (tmp_path / "data").write_text("a file where the data folder should be")
    with caplog.at_level(logging.WARNING, logger="jarvis.catalog"):
        [info] = new_catalog(tmp_path).rescan().models
    assert info.ok and any("cannot be written" in r.getMessage() for r in caplog.records)


def test_the_listing_walks_past_token_strings_and_still_reads_the_header(tmp_path, model_path):
    """The catalog's read skips the token strings, yet everything it shows is read as before."""
    listing, full = read_header(model_path, check_vocab=False), read_header(model_path)
    assert listing == full  # metadata, tensor count, parameters, offsets: all equal
    assert listing.architecture == "llama" and listing.context_length == 8192
    assert "<|im_start|>" in listing.metadata["tokenizer.chat_template"]
    info = read_gguf_info(model_path, "smol", "bundled")
    assert info.ok and info.context_length == 8192 and info.architecture == "llama"
    assert info.has_chat_template and info.quantization == "Q4_1" and info.parameters == full.n_parameters

    # The strings really go unread: the listing does not see two tokens made equal, the load check does.
    path = tmp_path / "dup.gguf"
    shutil.copyfile(model_path, path)
    blob = bytearray(path.read_bytes()[:2 * 2**20])
    one = b"\x01" + b"\0" * 7  # two one-character tokens in a row, e.g. "0" and "1"
    m = re.search(re.escape(one) + b"[0-9]" + re.escape(one) + b"[0-9]", bytes(blob))
    assert m is not None
    blob[m.end() - 1] = blob[m.start() + 8]  # the second becomes the first
    with open(path, "r+b") as f:
        f.write(blob)
    assert read_header(path, check_vocab=False).metadata == full.metadata
    with pytest.raises(GGUFError, match="repeats token"):
        read_header(path)


def test_token_strings_past_the_end_of_the_file_are_refused_in_both_reads(tmp_path):
    from bench.hostile import ARCH, ONE_TENSOR, STRING, _s, gguf

    tokens = _s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, STRING, 2) + _s("a") + struct.pack("<Q", 2**40)
    path = tmp_path / "long-token.gguf"
    path.write_bytes(gguf([ARCH, tokens], ONE_TENSOR))
    for check_vocab in (True, False):
        with pytest.raises(GGUFError, match="run past the end"):
            read_header(path, check_vocab=check_vocab)


def test_a_large_vocabulary_with_merges_reads_right_when_skipped(tmp_path):
    from jarvis.bench.catalog_bench import write_vocab_gguf

    path = write_vocab_gguf(tmp_path / "big.gguf", 20_000)
    listing, full = read_header(path, check_vocab=False), read_header(path)
    assert listing == full and listing.context_length == 32768 and listing.architecture == "llama"
    assert listing.metadata["tokenizer.chat_template"].startswith("{% for m in messages %}")


# ---- start-up: listening before the first scan ends ------------------------------------------
class HeldScan:
    """The catalog's scan_hook: every scan waits at its start until `release()`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._gate = threading.Event()

    def __call__(self) -> None:
        self.entered.set()
        assert self._gate.wait(120), "the test never released the scan"

    def release(self) -> None:
        self._gate.set()


@pytest.fixture
def server_loop():
    loop = asyncio.new_event_loop()
    # The "jarvis-" prefix: conftest fails a test that leaves this thread running.
    thread = threading.Thread(target=loop.run_forever, name="jarvis-test-startup", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_serve_answers_and_a_default_model_request_waits_for_a_held_first_scan(tmp_path, model_path, server_loop):
    from jarvis.http.openai_routes import openai_routes
    from jarvis.runtime import Runtime

    def on_loop(coro):
        return asyncio.run_coroutine_threadsafe(coro, server_loop)

    models = tmp_path / "models"
    models.mkdir()
    os.link(model_path, models / "alpha.gguf")
    settings = make_settings(tmp_path / "data", JARVIS_GENERAL_MODELS_DIRS=str(models))
    held = HeldScan()

    async def build():
        runtime = Runtime(settings, registrars=[openai_routes])
        runtime.assistant.catalog.scan_hook = held  # before start(): the constructor scans nothing
        return runtime

    runtime = on_loop(build()).result(60)
    catalog = runtime.assistant.catalog
    started = on_loop(runtime.start(http=True, warmup=False, host="127.0.0.1", port=0))
    try:
        assert held.entered.wait(60)  # the first scan is running, on the catalog's thread, and held

        async def listening():
            while runtime.server is None:
                await asyncio.sleep(0.005)
        on_loop(asyncio.wait_for(listening(), 60)).result()

        async def while_held():
            timeout = aiohttp.ClientTimeout(total=30)  # a failure detector, not a measurement
            async with aiohttp.ClientSession(runtime.server.url, timeout=timeout) as session:
                async with session.get("/health") as r:
                    health = r.status
                async with session.get("/api/models/stats") as r:
                    stats = r.status
            return health, stats

        assert asyncio.run(while_held()) == (200, 200)
        assert not catalog.snapshot().scanned and not started.done()

        # A request for the default model, made while the scan is held: it waits, then gets the model.
        assistant = runtime.assistant
        reply = on_loop(assistant.chat(assistant.request("hi", max_tokens=1, use_cache=False)))
        on_loop(asyncio.sleep(0)).result(30)  # a barrier: the request has run up to its first wait
        assert not catalog.snapshot().scanned and not reply.done()

        async def http_default():
            async with aiohttp.ClientSession(runtime.server.url) as session:
                async with session.post("/v1/chat/completions", json={
                        "model": "", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}) as r:
                    return r.status, await r.json()

        via_http = on_loop(http_default())
        held.release()
        started.result(120)
        assert reply.result(120).record.model == "SmolLM2-135M-Instruct.Q4_1"
        status, body = via_http.result(120)
        assert status == 200 and body["model"] == "SmolLM2-135M-Instruct.Q4_1"
        assert {"alpha", "SmolLM2-135M-Instruct.Q4_1"} <= {m.name for m in catalog.snapshot().models}
    finally:
        held.release()
        on_loop(runtime.close()).result(120)


def _held_runtime(tmp_path, server_loop, **env):
    """A Runtime whose first scan waits on a HeldScan, started (listening) on `server_loop`."""
    from jarvis.http.openai_routes import openai_routes
    from jarvis.runtime import Runtime

    settings = make_settings(tmp_path / "data", **env)
    held = HeldScan()

    async def build():
        runtime = Runtime(settings, registrars=[openai_routes])
        runtime.assistant.catalog.scan_hook = held
        return runtime

    runtime = asyncio.run_coroutine_threadsafe(build(), server_loop).result(60)
    started = asyncio.run_coroutine_threadsafe(
        runtime.start(http=True, warmup=True, host="127.0.0.1", port=0), server_loop)
    assert held.entered.wait(60)

    async def listening():
        while runtime.server is None:
            await asyncio.sleep(0.005)
    asyncio.run_coroutine_threadsafe(asyncio.wait_for(listening(), 60), server_loop).result()
    return runtime, held, started


def test_the_default_model_loads_while_the_server_listens_without_any_request(tmp_path, server_loop):
    """Warm-up (models.warmup = ["default"]): the server answers /health first, then the default
    model loads in the background once the scan names it, so the first request does not pay the load."""
    runtime, held, started = _held_runtime(tmp_path, server_loop, JARVIS_MODELS_WARMUP="default")
    from jarvis.request import RequestRecord

    records = []
    runtime.bus.subscribe(lambda r: records.append(r) if isinstance(r, RequestRecord) else None)
    manager = runtime.assistant.manager
    try:
        async def health():
            async with aiohttp.ClientSession(runtime.server.url) as session:
                async with session.get("/health") as r:
                    return r.status
        assert asyncio.run(health()) == 200
        assert manager.loaded() == []  # listening before the scan, so before any load
        held.release()
        started.result(120)

        async def loaded():
            while not manager.loaded():
                await asyncio.sleep(0.02)
            return [m["name"] for m in manager.loaded()]
        names = asyncio.run_coroutine_threadsafe(asyncio.wait_for(loaded(), 120), server_loop).result()
        assert names == ["SmolLM2-135M-Instruct.Q4_1"]
        assert records == []  # loaded by the warm-up: no request ran
    finally:
        held.release()
        asyncio.run_coroutine_threadsafe(runtime.close(), server_loop).result(120)


def test_every_api_surface_gets_the_default_model_while_the_first_scan_runs(tmp_path, server_loop):
    """Chat completions, Messages and Responses with no model, sent before the first scan finished:
    each waits for it (Assistant.resolve_default) and answers with the default model, never an error."""
    runtime, held, started = _held_runtime(tmp_path, server_loop)
    user = [{"role": "user", "content": "hi"}]
    calls = {"/v1/chat/completions": {"messages": user, "max_tokens": 1},
             "/v1/messages": {"messages": user, "max_tokens": 1},
             "/v1/responses": {"input": "hi", "max_output_tokens": 1}}
    try:
        async def post(path, body):
            async with aiohttp.ClientSession(runtime.server.url) as session:
                async with session.post(path, json=body) as r:
                    return r.status, await r.json()
        assistant = runtime.assistant
        asking = []  # each surface's call while the scan is held: a barrier, not a sleep
        resolve = assistant.resolve_default

        async def counted():
            asking.append(1)
            return await resolve()
        assistant.resolve_default = counted
        pending = {path: asyncio.run_coroutine_threadsafe(post(path, body), server_loop) for path, body in calls.items()}

        async def all_waiting():
            while len(asking) < len(calls):
                await asyncio.sleep(0.005)
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(all_waiting(), 60), server_loop).result()
        default = asyncio.run_coroutine_threadsafe(resolve(), server_loop)
        assert not assistant.catalog.snapshot().scanned and not any(f.done() for f in pending.values())
        held.release()
        started.result(120)
        assert default.result(120) == "SmolLM2-135M-Instruct.Q4_1"
        for path, fut in pending.items():
            status, body = fut.result(120)
            assert (path, status, body.get("model")) == (path, 200, "SmolLM2-135M-Instruct.Q4_1")
    finally:
        held.release()
        asyncio.run_coroutine_threadsafe(runtime.close(), server_loop).result(120)


def test_the_header_readers_type_tables_match_the_gguf_package():
    """jarvis.gguf_header keeps its own copies of gguf's tensor-type sizes and file-type names, so a
    header read never imports the `gguf` package (its __init__ is ~65 ms on `jarvis serve`'s path to
    the warm-up load). The copies must say what the pinned gguf says, entry for entry."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    from jarvis.gguf_header import GGML_TYPE_SIZES, LLAMA_FILE_TYPES

    assert GGML_TYPE_SIZES == {t.value: GGML_QUANT_SIZES[t] for t in GGMLQuantizationType}
    assert LLAMA_FILE_TYPES == {t.value: t.name for t in LlamaFileType}


def test_a_header_read_hands_the_gil_over_at_most_once_a_millisecond(model_path, monkeypatch):
    """The walk over ~100k vocabulary and merge strings hands the GIL over (time.sleep(0)) so the
    window's thread never waits long, but by the clock: each hand-over to a busy thread costs the
    read up to the 5 ms switch interval, and one per 1,024 strings (~100 per read) stretched a 15 ms
    read to ~500 ms beside a thread that kept the GIL (jarvis serve's HTTP imports at start-up)."""
    import jarvis.gguf_header as gguf_header

    real_sleep, handed = time.sleep, []

    def sleep(seconds):
        handed.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(gguf_header.time, "sleep", sleep)
    t0 = time.perf_counter()
    read_header(model_path)  # the engine's check: the vocabulary's strings collected, then the merges walked
    took_ms = (time.perf_counter() - t0) * 1000
    assert handed and set(handed) == {0}  # it does hand over, each time with sleep(0)
    assert len(handed) <= took_ms + 1, (len(handed), took_ms)
