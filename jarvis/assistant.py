"""The one async facade every front end uses (CLI, HTTP API, desktop).

`stream(request)` yields text Chunks, the last one carrying the request's RequestRecord (the
engine's, enriched here with load, cache and request facts); `chat(request)` returns the whole
Reply. That same record is what goes on the RecordBus to every telemetry consumer. Nothing here
blocks the event loop: loads run in the manager's executor, decoding in each model's worker
thread. Works on any running asyncio loop (plain asyncio or qasync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import AsyncIterator

from jarvis.cache import CacheLevels, SharedGeneration, cache_key, replay
from jarvis.catalog import Catalog, ModelInfo
from jarvis.config import Settings, apply_process_environment, load_settings
from jarvis.errors import JarvisError, RequestCancelled
from jarvis.manager import ModelManager
from jarvis.request import ChatRequest, Chunk, Message, Reply, RequestRecord, resolve_timeout
from jarvis.telemetry import RecordBus

log = logging.getLogger("jarvis.assistant")


class Assistant:
    def __init__(self, settings: Settings | None = None, *, catalog: Catalog | None = None,
                 bus: RecordBus | None = None, manager: ModelManager | None = None,
                 cache: CacheLevels | None = None):
        self.settings = settings or load_settings()
        apply_process_environment(self.settings)
        self.bus = bus or RecordBus()
        self.catalog = catalog or Catalog.from_settings(self.settings)
        if not self.catalog.snapshot().scanned:
            # Start-up, before anything is served: later scans run on the catalog's own thread.
            self.catalog.rescan()
        self.manager = manager or ModelManager.from_settings(self.settings, self.catalog, self.bus)
        # CACHE LEVELS (issue 26): L1 memory, L2 disk, semantic; the manager embeds for the last.
        self.cache = cache or CacheLevels.from_settings(self.settings, self.catalog, self.manager)
        self.remotes = None  # remote OpenAI-compatible servers (jarvis.remote), when settings name any
        if self.settings.remotes:
            from jarvis.remote.registry import Remotes

            self.remotes = Remotes.from_settings(self.settings, self.catalog, self.bus)
            self.manager.remotes = self.remotes
            self.remotes.publish()  # an allow-list is known before the first probe
        self._inflight: dict[str, SharedGeneration] = {}
        self._tasks: set[asyncio.Task] = set()

    # ---- life cycle ------------------------------------------------------------------------
    async def start(self, warmup: bool = True) -> None:
        """Begin watching the models folders and loading the warm-up models in the background;
        returns at once."""
        self._spawn(self.catalog.watch())  # a .gguf dropped in later shows up without a restart
        self.cache.start()  # CACHE LEVELS: the disk file's entries counted on the cache's thread
        if self.remotes is not None:
            self.remotes.start()  # probe now and every health_interval_s; read /metrics at 1 Hz
        if not warmup:
            return
        for name in self.settings.models.warmup:
            target = self.default_model() if name == "default" else name
            self._spawn(self._warm(target))

    async def _warm(self, name: str) -> None:
        if self.remotes is not None and self.remotes.match(name):
            return  # a remote model loads nothing here; its first probe is its warm-up
        try:
            await self.manager.load(name)
        except JarvisError as e:
            log.warning("warm-up of %s failed: %s", name, e)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.remotes is not None:
            await self.remotes.close()
        await self.cache.close()  # CACHE LEVELS: pending disk writes land, the disk thread ends
        self.catalog.close()
        await self.manager.close()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- requests --------------------------------------------------------------------------
    def default_model(self) -> str:
        """The model a request that names none gets (from the catalog snapshot: loop-safe)."""
        return self.catalog.snapshot().default_name(self.settings.general.default_model)

    def request(self, user: str | None = None, *, messages: list[Message] | None = None, system: str | None = None,
                model: str = "", **sampling) -> ChatRequest:
        """A ChatRequest with the settings' generation defaults; keyword overrides win."""
        extra = {k: sampling.pop(k) for k in ("priority", "use_cache", "truncate", "timeout_s", "operation", "source")
                 if k in sampling}
        params = self.settings.generation.with_overrides(**sampling)
        msgs: list[Message] = []
        if system:
            msgs.append(Message("system", system))
        msgs.extend(messages or [])
        if user is not None:
            msgs.append(Message("user", user))
        return ChatRequest(messages=tuple(msgs), model=model, sampling=params, **extra)

    async def chat(self, request: ChatRequest) -> Reply:
        parts: list[str] = []
        record: RequestRecord | None = None
        async for chunk in self.stream(request):
            parts.append(chunk.text)
            if chunk.done and chunk.record is not None:
                record = chunk.record
        assert record is not None, "a stream that ends without an error ends with its record"
        return Reply("".join(parts), record)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Stream a reply. Abandoning the iterator cancels the request (unless others share it)."""
        started = time.perf_counter()
        text: list[str] = []
        status, error_kind, final = "ok", "", None
        cache = "off"
        request.validate()
        name = request.model or self.settings.general.default_model or "(default)"  # until resolved
        try:
            if self.remotes is not None:  # NAME/...: the remote's first probe done; down -> 503 at once
                await self.remotes.prepare(request.model or self.settings.general.default_model)
            # From the snapshot; a name it lacks makes the catalog rescan once, on its own thread.
            info = await self.catalog.lookup(request.model, self.settings.general.default_model)
            name = info.name
            # ---- CACHE LEVELS (issue 26): the one lookup; a hit says its level (hit/disk/semantic)
            key = cache_key(request, info.identity)
            hit = None
            if key is not None and request.use_cache and self.cache.enabled:
                hit = await self.cache.lookup(request, key, info)
                cache = "miss" if hit is None else hit.level  # the one count of hits and misses: this record's
            if hit is not None:
                source = replay(hit.reply)  # its record carries the level, similarity and match id
            # ---- end CACHE LEVELS
            elif key is not None and request.use_cache and key in self._inflight:
                source = self._join(self._inflight[key], coalesced=True)
            elif key is not None:
                source = self._join(self._start_shared(key, request, info, started), coalesced=False)
            else:
                source = self._generate(request, info, started)
            # aclosing: leaving early closes the source at once, which cancels the generation now
            # rather than whenever the garbage collector finalises the generator.
            async with contextlib.aclosing(source):
                async for chunk in source:
                    text.append(chunk.text)
                    if chunk.done and chunk.record is not None:
                        final = replace(chunk.record, request_id=request.request_id, operation=request.operation,
                                        source=request.source, cache=cache, timestamp=time.time(),
                                        total_ms=(time.perf_counter() - started) * 1000)
                        chunk = replace(chunk, record=final)
                    yield chunk
        except (asyncio.CancelledError, GeneratorExit, RequestCancelled):
            status, error_kind = "cancelled", "RequestCancelled"
            raise
        except JarvisError as e:
            status, error_kind = "error", type(e).__name__
            raise
        finally:
            if final is None:  # it never finished: a record of how far it got
                final = RequestRecord(request_id=request.request_id, model=name, operation=request.operation,
                                      source=request.source, status=status, error_kind=error_kind, cache=cache,
                                      total_ms=(time.perf_counter() - started) * 1000)
            self._emit(request, final, "".join(text))

    async def _generate(self, request: ChatRequest, info: ModelInfo, started: float) -> AsyncIterator[Chunk]:
        timeout = resolve_timeout(request.timeout_s, self.settings.engine.request_timeout_s)
        async with self.manager.lease(info, timeout) as lease:
            seq = lease.engine.submit(request)
            async for chunk in lease.engine.stream(seq):
                if chunk.done and chunk.record is not None:
                    r = chunk.record
                    pre_submit_ms = (seq.submitted_at - started) * 1000
                    chunk = replace(chunk, record=replace(  # the last tokens' logprobs ride along
                        r, model_load_ms=lease.load_ms, warm_start=lease.warm_start,
                        queue_position=seq.queue_position,
                        ttft_ms=r.ttft_ms + pre_submit_ms))  # what the user waited, a model load included
                yield chunk

    def _start_shared(self, key: str, request: ChatRequest, info: ModelInfo, started: float) -> SharedGeneration:
        shared = SharedGeneration()
        self._inflight[key] = shared

        async def produce() -> None:
            parts: list[str] = []
            try:
                async for chunk in self._generate(request, info, started):
                    parts.append(chunk.text)
                    if chunk.done and chunk.record is not None:
                        self.cache.store(key, request, info, Reply("".join(parts), chunk.record))  # CACHE LEVELS
                    shared.publish(chunk)
                shared.close()
            except asyncio.CancelledError:
                shared.fail(RequestCancelled())
                raise
            except BaseException as e:
                shared.fail(e)
            finally:
                if self._inflight.get(key) is shared:
                    del self._inflight[key]

        shared.task = self._spawn(produce())
        return shared

    async def _join(self, shared: SharedGeneration, coalesced: bool) -> AsyncIterator[Chunk]:
        shared.listeners += 1
        if coalesced:
            self.cache.coalesced += 1
        try:
            async for chunk in shared.listen():
                if chunk.done and chunk.record is not None and coalesced:
                    chunk = replace(chunk, record=replace(chunk.record, coalesced=True))
                yield chunk
        finally:
            shared.listeners -= 1
            if shared.listeners == 0 and not shared.done and shared.task is not None:
                shared.task.cancel()  # the last listener left: stop generating

    def _emit(self, request: ChatRequest, record: RequestRecord, reply_text: str) -> None:
        if self.settings.telemetry.log_prompts:
            last = request.messages[-1].content if request.messages else ""
            record = replace(record, prompt=request.prompt if request.prompt is not None else last, reply=reply_text)
        self.bus.emit(record)

    # ---- what front ends show --------------------------------------------------------------
    def models(self) -> list[dict]:
        loaded = {m["name"]: m for m in self.manager.loaded()}
        loading = set(self.manager.loading())
        out = []
        for info in self.catalog.snapshot().models:
            d = info.summary()
            d["state"] = "loaded" if info.name in loaded else "loading" if info.name in loading else \
                "unreadable" if not info.ok else "not loaded"
            if info.remote and self.remotes is not None:
                d["state"] = "remote" if self.remotes.backends[info.remote].reachable else "unreachable"
            d["loaded"] = loaded.get(info.name)
            out.append(d)
        return out
