"""Load and faults through the Assistant: more requests than the queue holds, a storm of
cancellations, unloading or evicting a busy model, and a long run of requests (RSS, fds, threads)."""

from __future__ import annotations

import asyncio
import random
import shutil
import threading
import time
from pathlib import Path

import psutil

from bench.reliability.models import bundled_model
from bench.reliability.result import Result
from bench.support.chat import bounded, greedy
from bench.support.settings import tune

PROMPTS = ["Count from 1 to 5.", "Name two fruits.", "What is 2 + 2?", "Say hello in French.",
           "Name a color.", "What is the capital of France?"]


# ---- overload ------------------------------------------------------------------------------
async def overload(settings, n: int = 60, max_queue: int = 16, batch_size: int = 4) -> Result:
    from jarvis.assistant import Assistant
    from jarvis.errors import QueueFull

    r = Result(f"overload ({n} at once, queue {max_queue})")
    a = Assistant(tune(settings, engine={"max_queue": max_queue, "batch_size": batch_size}))
    try:
        await a.manager.load(await a.resolve_default())  # waits for the first scan

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


# ---- cancel storm --------------------------------------------------------------------------
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


# ---- unloading a model with requests queued ------------------------------------------------
async def unload_under_load(settings, models_dir: Path, rounds: int = 1, per_round: int = 10) -> Result:
    from jarvis.assistant import Assistant
    from jarvis.catalog import Catalog
    from jarvis.errors import JarvisError

    r = Result("unload/evict under load")
    models_dir.mkdir(parents=True, exist_ok=True)
    for name in ("alpha", "beta"):
        if not (models_dir / f"{name}.gguf").exists():
            shutil.copyfile(bundled_model(), models_dir / f"{name}.gguf")
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


# ---- many requests in a row: resources -----------------------------------------------------
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
