"""The one async facade every front end uses (CLI, HTTP API, desktop).

`stream(request)` yields text Chunks, the last one carrying Timings; `chat(request)` returns the
whole Reply. Nothing here blocks the event loop: loads run in the manager's executor, decoding
in each model's worker thread. Works on any running asyncio loop (plain asyncio or qasync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import AsyncIterator

from jarvis.cache import ResponseCache, SharedGeneration, cache_key, replay
from jarvis.catalog import Catalog, ModelInfo
from jarvis.config import Settings, apply_process_environment, load_settings
from jarvis.errors import JarvisError, RequestCancelled
from jarvis.manager import ModelManager
from jarvis.request import ChatRequest, Chunk, Message, Reply, SamplingParams, Timings
from jarvis.telemetry import RecordBus, RequestRecord

log = logging.getLogger("jarvis.assistant")


class Assistant:
    def __init__(self, settings: Settings | None = None, *, catalog: Catalog | None = None,
                 bus: RecordBus | None = None, manager: ModelManager | None = None,
                 cache: ResponseCache | None = None):
        self.settings = settings or load_settings()
        apply_process_environment(self.settings)
        self.bus = bus or RecordBus()
        self.catalog = catalog or Catalog.from_settings(self.settings)
        if not self.catalog.snapshot().scanned:
            # Start-up, before anything is served: later scans run on the catalog's own thread.
            self.catalog.rescan()
        self.manager = manager or ModelManager.from_settings(self.settings, self.catalog, self.bus)
        self.cache = cache or ResponseCache.from_settings(self.settings)
        self._inflight: dict[str, SharedGeneration] = {}
        self._tasks: set[asyncio.Task] = set()

    # ---- life cycle ------------------------------------------------------------------------
    async def start(self, warmup: bool = True) -> None:
        """Begin watching the models folders and loading the warm-up models in the background;
        returns at once."""
        self._spawn(self.catalog.watch())  # a .gguf dropped in later shows up without a restart
        if not warmup:
            return
        for name in self.settings.models.warmup:
            target = self.default_model() if name == "default" else name
            self._spawn(self._warm(target))

    async def _warm(self, name: str) -> None:
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
        extra = {k: sampling.pop(k) for k in ("priority", "use_cache", "truncate", "timeout_s", "operation")
                 if k in sampling}
        params = SamplingParams.from_settings(self.settings.generation, **sampling)
        msgs: list[Message] = []
        if system:
            msgs.append(Message("system", system))
        msgs.extend(messages or [])
        if user is not None:
            msgs.append(Message("user", user))
        return ChatRequest(messages=tuple(msgs), model=model, sampling=params, **extra)

    async def chat(self, request: ChatRequest) -> Reply:
        parts: list[str] = []
        timings = Timings()
        async for chunk in self.stream(request):
            parts.append(chunk.text)
            if chunk.done and chunk.timings:
                timings = chunk.timings
        return Reply("".join(parts), timings)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Stream a reply. Abandoning the iterator cancels the request (unless others share it)."""
        started = time.perf_counter()
        text: list[str] = []
        status, error_kind, timings = "ok", "", None
        request.validate()
        name = request.model or self.settings.general.default_model or "(default)"  # until resolved
        try:
            # From the snapshot; a name it lacks makes the catalog rescan once, on its own thread.
            info = await self.catalog.lookup(request.model, self.settings.general.default_model)
            name = info.name
            key = cache_key(request, info.identity)
            if request.use_cache and (hit := self.cache.get(key)) is not None:
                source = replay(hit)
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
                    if chunk.done:
                        timings = chunk.timings
                    yield chunk
        except (asyncio.CancelledError, GeneratorExit, RequestCancelled):
            status, error_kind = "cancelled", "RequestCancelled"
            raise
        except JarvisError as e:
            status, error_kind = "error", type(e).__name__
            raise
        finally:
            self._record(request, name, started, status, error_kind, timings, "".join(text))

    async def _generate(self, request: ChatRequest, info: ModelInfo, started: float) -> AsyncIterator[Chunk]:
        async with self.manager.lease(info, request.timeout_s or self.settings.engine.request_timeout_s or None) as lease:
            seq = lease.engine.submit(request)
            async for chunk in lease.engine.stream(seq):
                if chunk.done and chunk.timings is not None:
                    t = chunk.timings
                    pre_submit_ms = (seq.submitted_at - started) * 1000
                    t.model_load_ms = lease.load_ms
                    t.warm_start = lease.warm_start
                    t.ttft_ms += pre_submit_ms  # what the user waited, a model load included
                    t.total_ms = (time.perf_counter() - started) * 1000
                yield chunk

    def _start_shared(self, key: str, request: ChatRequest, info: ModelInfo, started: float) -> SharedGeneration:
        shared = SharedGeneration()
        self._inflight[key] = shared

        async def produce() -> None:
            parts: list[str] = []
            try:
                async for chunk in self._generate(request, info, started):
                    parts.append(chunk.text)
                    if chunk.done and chunk.timings is not None:
                        self.cache.put(key, Reply("".join(parts), chunk.timings))
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
                if chunk.done and chunk.timings is not None and coalesced:
                    chunk = Chunk(chunk.text, True, Timings(**{**chunk.timings.as_dict(), "coalesced": True}))
                yield chunk
        finally:
            shared.listeners -= 1
            if shared.listeners == 0 and not shared.done and shared.task is not None:
                shared.task.cancel()  # the last listener left: stop generating

    def _record(self, request: ChatRequest, name: str, started: float, status: str, error_kind: str,
                timings: Timings | None, reply_text: str) -> None:
        t = timings or Timings()
        log_prompts = self.settings.telemetry.log_prompts
        prompt = request.prompt if request.prompt is not None else (request.messages[-1].content if request.messages else "")
        self.bus.emit(RequestRecord(
            request_id=request.request_id, model=name, operation=request.operation, status=status,
            error_kind=error_kind, latency_ms=(time.perf_counter() - started) * 1000, queue_ms=t.queue_ms,
            model_load_ms=t.model_load_ms, prefill_ms=t.prefill_ms, ttft_ms=t.ttft_ms,
            decode_tokens_per_s=t.decode_tokens_per_s, inter_token_ms=t.inter_token_ms,
            prompt_tokens=t.prompt_tokens, cached_prompt_tokens=t.cached_prompt_tokens,
            completion_tokens=t.completion_tokens, cache_hit=t.cache_hit, warm_start=t.warm_start,
            coalesced=t.coalesced, finish_reason=t.finish_reason if timings else "",
            prompt=prompt if log_prompts else None, reply=reply_text if log_prompts else None,
        ))

    # ---- what front ends show --------------------------------------------------------------
    def models(self) -> list[dict]:
        loaded = {m["name"]: m for m in self.manager.loaded()}
        loading = set(self.manager.loading())
        out = []
        for info in self.catalog.snapshot().models:
            d = info.summary()
            d["state"] = "loaded" if info.name in loaded else "loading" if info.name in loading else \
                "unreadable" if not info.ok else "not loaded"
            d["loaded"] = loaded.get(info.name)
            out.append(d)
        return out


class SyncAssistant:
    """For scripts: an Assistant on its own event loop in a background thread."""

    def __init__(self, settings: Settings | None = None, **kw):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jarvis-sync-loop", daemon=True)
        self._thread.start()
        self.assistant: Assistant = self._call(self._make(settings, kw))

    @staticmethod
    async def _make(settings, kw) -> Assistant:
        return Assistant(settings, **kw)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def ask(self, user: str, **kw) -> Reply:
        return self._call(self.assistant.chat(self.assistant.request(user, **kw)))

    def chat(self, request: ChatRequest) -> Reply:
        return self._call(self.assistant.chat(request))

    def close(self) -> None:
        self._call(self.assistant.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "SyncAssistant":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
