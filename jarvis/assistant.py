"""The one async facade every front end uses (CLI, HTTP API, desktop).

`stream(request)` yields text Chunks, the last one carrying the request's RequestRecord (built
here, once, from the backend's timings and what the caller saw); `chat(request)` returns the whole
Reply. That same record is what goes on the RecordBus to every telemetry consumer. Models are
served through the backend registry (jarvis.backends): this facade never asks what kind a model
is. Nothing here blocks the event loop: loads run in the manager's executor, decoding in each
model's worker thread, remote calls are async I/O. Works on any running asyncio loop (plain
asyncio or qasync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import AsyncIterator

from jarvis.backends import BackendRegistry, Capability, require
from jarvis.cache import CacheHit, CacheLevels, SharedGeneration, cache_key, replay
from jarvis.catalog import Catalog, ModelInfo
from jarvis.config import Settings, apply_process_environment, load_settings
from jarvis.errors import JarvisError, RequestCancelled
from jarvis.manager import ModelManager
from jarvis.record_builder import build_record
from jarvis.request import ChatRequest, Chunk, Message, Reply, RequestRecord, Timings, resolve_timeout
from jarvis.tasks import TaskSet
from jarvis.telemetry import RecordBus

log = logging.getLogger("jarvis.assistant")


def needed_capabilities(request: ChatRequest) -> set[Capability]:
    """What a request asks of the backend that serves it."""
    options = request.options
    needs = {Capability.COMPLETION if request.prompt is not None else Capability.CHAT}
    if options.shaped:
        needs.add(Capability.GRAMMAR)
    if options.calls_tools:
        needs.add(Capability.TOOLS)
    if options.logprobs:
        needs.add(Capability.LOGPROBS)
    return needs


# What Assistant.request passes to the ChatRequest itself; every other keyword is a sampling parameter.
REQUEST_FIELDS = ("priority", "use_cache", "truncate", "timeout_s", "stream_interval_ms", "whole_reply", "operation",
                  "source")


class Assistant:
    def __init__(self, settings: Settings | None = None, *, catalog: Catalog | None = None,
                 bus: RecordBus | None = None, manager: ModelManager | None = None,
                 cache: CacheLevels | None = None):
        self.settings = settings or load_settings()
        apply_process_environment(self.settings)
        self.bus = bus or RecordBus()
        self.catalog = catalog or Catalog.from_settings(self.settings)  # scanned on its own thread, from start()
        self.manager = manager or ModelManager.from_settings(self.settings, self.catalog, self.bus)
        # Every source of models: this computer's engines (the manager), then any configured server.
        self.backends = BackendRegistry.from_settings(self.settings, self.catalog, self.bus, local=self.manager)
        # The response cache's levels: L1 memory, L2 disk, semantic (embedding through the manager).
        self.cache = cache or CacheLevels.from_settings(self.settings, self.catalog, self.manager)
        self._inflight: dict[str, SharedGeneration] = {}
        self._tasks = TaskSet()

    # ---- life cycle ------------------------------------------------------------------------
    async def start(self, warmup: bool = True) -> None:
        """Begin watching the models folders, start every backend source's background work (a
        remote's probes) and load the warm-up models in the background; returns at once."""
        self.catalog.start()  # the first scan, on the catalog's thread: lookups await it, nothing else does
        self._spawn(self.catalog.watch())  # a .gguf dropped in later shows up without a restart
        self.backends.start()
        self.cache.start()  # the disk level's entries counted on the cache's thread
        if not warmup:
            return
        for name in self.settings.models.warmup:
            self._spawn(self._warm(name))

    async def _warm(self, name: str) -> None:
        if name == "default":
            name = await self.resolve_default()
        try:
            await self.backends.prepare(name)
            await self.backends.warm(await self.catalog.lookup(name))
        except JarvisError as e:
            log.warning("warm-up of %s failed: %s", name, e)

    async def close(self) -> None:
        await self._tasks.cancel_all()
        await self.cache.close()  # pending disk writes land, the disk thread ends
        await asyncio.to_thread(self.catalog.close)  # joins the scanner thread: never on the loop
        await self.backends.close()

    def _spawn(self, coro) -> asyncio.Task:
        return self._tasks.spawn(coro)

    # ---- requests --------------------------------------------------------------------------
    def default_model(self) -> str:
        """The model a request that names none gets, from the catalog snapshot as it is now (loop-safe,
        never waits): raises CatalogNotReady before the first scan. For a display that can say
        "still reading"; a caller that needs the name uses `await resolve_default()`."""
        return self.catalog.snapshot().default_name(self.settings.general.default_model)

    async def resolve_default(self) -> str:
        """The default model's name, waiting for the first scan of the models folders when it has
        not finished (a configured default needs no scan). The one way to ask for it before start-up
        is over: a request sent while the catalog still reads gets the default, not an error."""
        configured = self.settings.general.default_model
        if configured:
            return configured
        return (await self.catalog.ready()).default_name()

    async def resolve_model(self, name: str) -> str:
        """`name`, or the default model's when it is empty."""
        return name or await self.resolve_default()

    def request(self, user: str | None = None, *, messages: list[Message] | None = None, system: str | None = None,
                model: str = "", **sampling) -> ChatRequest:
        """A ChatRequest with the settings' generation defaults; keyword overrides win."""
        extra = {k: sampling.pop(k) for k in REQUEST_FIELDS if k in sampling}
        params = self.settings.generation.with_overrides(**sampling)
        msgs: list[Message] = []
        if system:
            msgs.append(Message("system", system))
        msgs.extend(messages or [])
        if user is not None:
            msgs.append(Message("user", user))
        return ChatRequest(messages=tuple(msgs), model=model, sampling=params, **extra)

    async def chat(self, request: ChatRequest) -> Reply:
        """The reply in one piece (taken whole: nothing wakes the loop while it generates)."""
        parts: list[str] = []
        record: RequestRecord | None = None
        async for chunk in self.stream(replace(request, whole_reply=True)):
            parts.append(chunk.text)
            if chunk.done and chunk.record is not None:
                record = chunk.record
        assert record is not None, "a stream that ends without an error ends with its record"
        return Reply("".join(parts), record)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Stream a reply. Abandoning the iterator cancels the request (unless others share it).

        Whatever answers (a backend, the cache, an identical request already running), the last
        chunk carries the one RequestRecord, built here (jarvis.record_builder) and put on the bus."""
        started = time.perf_counter()
        first_text_at = 0.0
        text: list[str] = []
        status, error_kind, emitted = "ok", "", False
        cache, coalesced, served_by = "off", False, "local"
        hit: CacheHit | None = None
        request.validate()
        name = request.model or self.settings.general.default_model or "(default)"  # until resolved
        try:
            await self.backends.prepare(name)  # a remote's first probe done; a server that is down: 503 at once
            # From the snapshot; a name it lacks makes the catalog rescan once, on its own thread.
            info = await self.catalog.lookup(request.model, self.settings.general.default_model)
            name, served_by = info.name, info.served_by
            key = cache_key(request, info.identity)
            if key is not None and request.use_cache and self.cache.enabled:
                # The one lookup through every level; a hit says which (hit / disk / semantic).
                hit = await self.cache.lookup(request, key, info)
                cache = "miss" if hit is None else hit.level  # the one count of hits and misses: this record's
            if hit is not None:
                source = replay(hit.reply)
            elif key is not None and request.use_cache and key in self._inflight:
                coalesced = True
                source = self._join(self._inflight[key], coalesced=True)
            elif key is not None and request.use_cache:
                source = self._join(self._start_shared(key, request, info), coalesced=False)
            else:  # not repeatable, or `cache: false`: bypassed, neither stored nor shared (and no task hop per chunk)
                source = self._generate(request, info)
            # aclosing: leaving early closes the source at once, which cancels the generation now
            # rather than whenever the garbage collector finalises the generator.
            async with contextlib.aclosing(source):
                async for chunk in source:
                    if chunk.text and not first_text_at:
                        first_text_at = time.perf_counter()
                    text.append(chunk.text)
                    if chunk.done:
                        chunk = replace(chunk, record=self._record(request, name, served_by, started, first_text_at,
                                                                   chunk.timings, cache, coalesced, "ok", "", text, hit))
                        self.bus.emit(chunk.record)
                        emitted = True
                    yield chunk
        except (asyncio.CancelledError, GeneratorExit, RequestCancelled):
            status, error_kind = "cancelled", "RequestCancelled"
            raise
        except JarvisError as e:
            status, error_kind = "error", type(e).__name__
            raise
        except BaseException:
            status, error_kind = "error", "InternalError"
            raise
        finally:
            if not emitted:  # it never finished: a record of how far it got
                self.bus.emit(self._record(request, name, served_by, started, first_text_at, None, cache, coalesced,
                                           status, error_kind, text))

    def _record(self, request: ChatRequest, model: str, served_by: str, started: float, first_text_at: float,
                timings: Timings | None, cache: str, coalesced: bool, status: str, error_kind: str,
                text: list[str], hit: CacheHit | None = None) -> RequestRecord:
        logged = self.settings.telemetry.log_prompts
        if request.whole_reply and first_text_at and timings is not None and timings.first_token_at:
            # Held for the end, the text came all at once: its time to the first token is when
            # the first token was made, as a stream would have had it.
            first_text_at = min(first_text_at, timings.first_token_at)
        last = request.prompt if request.prompt is not None else (request.messages[-1].content if request.messages else "")
        return build_record(request_id=request.request_id, model=model, operation=request.operation,
                            source=request.source, served_by=served_by, started=started, first_text_at=first_text_at,
                            timings=timings, cache=cache, coalesced=coalesced, status=status, error_kind=error_kind,
                            cache_similarity=hit.similarity if hit else 0.0, cache_match=hit.match_id if hit else "",
                            prompt=last if logged else None, reply="".join(text) if logged else None,
                            tools=request.tool_figures)

    async def _generate(self, request: ChatRequest, info: ModelInfo) -> AsyncIterator[Chunk]:
        timeout = resolve_timeout(request.timeout_s, self.settings.engine.request_timeout_s)
        async with self.backends.lease(info, timeout) as lease:
            require(lease.backend, needed_capabilities(request), info.name)
            handle = lease.backend.submit(request)
            async for chunk in lease.backend.stream(handle):
                if chunk.done and chunk.timings is not None:  # the load this request waited for rides along
                    chunk = replace(chunk, timings=replace(chunk.timings, load_ms=lease.load_ms,
                                                           warm_start=lease.warm_start))
                yield chunk

    def _start_shared(self, key: str, request: ChatRequest, info: ModelInfo) -> SharedGeneration:
        shared = SharedGeneration()
        self._inflight[key] = shared

        async def produce() -> None:
            parts: list[str] = []
            begun = time.perf_counter()
            try:
                # Streamed whatever the first reader asked: a reader that joins it may stream.
                async for chunk in self._generate(replace(request, whole_reply=False), info):
                    parts.append(chunk.text)
                    if chunk.done and chunk.timings is not None:
                        # What the cache keeps of it: the text, and the record that counted it.
                        stored = build_record(request_id=request.request_id, model=info.name,
                                              operation=request.operation, source=request.source,
                                              served_by=info.served_by, started=begun, timings=chunk.timings)
                        self.cache.store(key, request, info, Reply("".join(parts), stored))
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
                yield chunk
        finally:
            shared.listeners -= 1
            if shared.listeners == 0 and not shared.done and shared.task is not None:
                shared.task.cancel()  # the last listener left: stop generating

    # ---- what front ends show --------------------------------------------------------------
    def models(self) -> list[dict]:
        loaded = {m["name"]: m for m in self.manager.loaded()}
        out = []
        for info in self.catalog.snapshot().models:
            d = info.summary()
            d["state"] = self.backends.state(info)
            d["loaded"] = loaded.get(info.name)
            out.append(d)
        return out
