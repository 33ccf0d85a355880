"""Loaded models: load on demand off the event loop, LRU eviction of idle models, keep-alive.

A model with a request running or queued (a lease held) is never evicted. Concurrent requests
for a model that is loading share that one load. When the limit is reached and every loaded
model is busy, a request waits for one to go idle (bounded by its timeout).

A model whose worker crashed is unloaded at once (its requests have already failed) and counted;
the next request for it loads it afresh. NVML (free GPU memory for the budget) is read in the
loader thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from jarvis.backends.base import Lease
from jarvis.backends.local import LocalBackend
from jarvis.catalog import Catalog, LocalModel
from jarvis.engine import Engine, EngineConfig, backend
from jarvis.engine.config import slot_context
from jarvis.engine.early_open import EarlyOpen
from jarvis.errors import EngineCrashed, InvalidRequest, JarvisError, ModelBusy, ModelLoadError
from jarvis.telemetry import ModelRecord, RecordBus
from jarvis.telemetry.gpu import GpuProbe

log = logging.getLogger("jarvis.manager")
MEMORY_MARGIN = 0.8  # of what psutil says is available, when no budget is set


@dataclass(eq=False)
class LoadedModel:
    info: LocalModel
    engine: Engine
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    last_used_wall: float = field(default_factory=time.time)
    leases: int = 0
    unload_handle: asyncio.TimerHandle | None = None

    @property
    def busy(self) -> bool:
        return self.leases > 0 or self.engine.busy

    def summary(self, keep_alive_s: float) -> dict:
        idle_for = time.monotonic() - self.last_used
        return {
            "name": self.info.name, "path": str(self.info.path), "loaded_at": self.loaded_at,
            "last_used": self.last_used_wall, "load_ms": round(self.engine.load_ms, 1),
            "memory_bytes": self.engine.memory_bytes, "gpu_layers": self.engine.gpu_layers,
            "layers": self.engine.model_layers,
            "context_per_slot": self.engine.n_ctx_seq, "slots": self.engine.config.batch_size,
            "active_slots": self.engine.active_slots, "queue_depth": self.engine.queue_depth,
            "busy": self.busy, "offload_note": self.engine.offload_note,
            "prompt_cache": self.engine.prompt_cache.summary(),
            "unloads_in_s": None if keep_alive_s < 0 or self.busy else max(0.0, keep_alive_s - idle_for),
        }


@dataclass(frozen=True)
class CrashCount:
    """How often one model's worker crashed, and the last reason."""

    crashes: int
    last_error: str
    last_crash_at: float  # time.time()


class ModelManager:
    """This computer's models: the backend source of every catalog model with served_by "local"
    (jarvis.backends.ModelSource)."""

    served_by = "local"
    capabilities = LocalBackend.capabilities  # what its models can do (the /v1/models listing says)

    def __init__(self, catalog: Catalog, config: EngineConfig, bus: RecordBus, *, max_loaded: int = 2,
                 keep_alive_s: float = 1800, memory_budget_bytes: int = 0, gpu: GpuProbe | None = None):
        self.catalog = catalog
        self.config = config
        self.bus = bus
        self.max_loaded = max_loaded
        self.keep_alive_s = keep_alive_s
        self.memory_budget_bytes = memory_budget_bytes
        self._gpu = gpu  # created on first use: only a GPU build asks NVML for free memory
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, asyncio.Future] = {}
        self._changed: asyncio.Condition | None = None
        self._tasks: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones
        self._crashes: dict[str, CrashCount] = {}
        self._stuck: dict[str, LoadedModel] = {}  # unloaded, but their worker never stopped: memory still held
        # Loads and unloads run here, one at a time: two loads at once would only fight for memory.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jarvis-loader")
        # An open begun before this manager existed (`jarvis serve`: engine/opening.py), handed to
        # the first load of its file; freed at close when no load asked for it.
        self.early_open: EarlyOpen | None = None

    @classmethod
    def from_settings(cls, settings, catalog: Catalog, bus: RecordBus) -> "ModelManager":
        m = settings.models
        return cls(catalog, EngineConfig.from_settings(settings), bus, max_loaded=m.max_loaded_models,
                   keep_alive_s=m.keep_alive_s, memory_budget_bytes=m.memory_budget_mb * 2**20)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    # ---- the backend source face (jarvis.backends.ModelSource) ---------------------------
    async def prepare(self, name: str) -> None:
        """Nothing to do before a catalog lookup: the catalog scans files itself."""

    async def warm(self, info: LocalModel) -> None:
        await self.load(info.name)

    def context_length(self, info: LocalModel) -> int:
        """What a slot of its engine holds: engine.context_length within the trained length."""
        return slot_context(self.config.context_length, info.context_length)

    def state(self, info: LocalModel) -> str:
        if info.name in self._loaded:
            return "loaded"
        if info.name in self._loading:
            return "loading"
        return "not loaded" if info.ok else "unreadable"

    def start(self) -> None:
        """Nothing runs in the background until a model is loaded."""

    def status(self) -> list[dict]:
        return []

    # ---- what the Assistant uses ----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lease(self, info: LocalModel, timeout_s: float | None = None):
        """Hold a loaded model for one request; it cannot be evicted meanwhile. `info` comes from
        the catalog lookup the caller already made (ModelNotFound / ModelLoadError come from it)."""
        t0 = time.perf_counter()
        loaded, warm = await asyncio.wait_for(self._ensure_loaded(info), timeout_s) if timeout_s else \
            await self._ensure_loaded(info)
        loaded.leases += 1
        self._cancel_unload(loaded)
        try:
            yield Lease(LocalBackend(loaded.engine), warm, 0.0 if warm else (time.perf_counter() - t0) * 1000)
        finally:
            loaded.leases -= 1
            loaded.last_used = time.monotonic()
            loaded.last_used_wall = time.time()
            self._schedule_unload(loaded)
            async with self._condition():
                self._condition().notify_all()

    async def load(self, name: str) -> LoadedModel:
        """Load without running anything (warm-up); returns the loaded model."""
        info = await self.catalog.lookup(name)  # the snapshot; a rescan, if any, runs off the loop
        if info.served_by != self.served_by:  # not one of this source's models
            raise InvalidRequest(f"{name!r} is served by {info.served_by!r} ({info.source}): there is nothing to load "
                                 "on this computer.",
                                 field="model")
        loaded, _ = await self._ensure_loaded(info)
        self._schedule_unload(loaded)
        return loaded

    async def unload(self, name: str, *, force: bool = False) -> bool:
        loaded = self._loaded.get(name)
        if loaded is None:
            return False
        if loaded.busy and not force:
            raise ModelBusy(f"Model {name!r} is answering a request; stop it first or wait.")
        await self._unload(loaded, "requested")
        return True

    def loaded(self) -> list[dict]:
        out = []
        for m in self._loaded.values():
            crash = self._crashes.get(m.info.name)
            out.append({**m.summary(self.keep_alive_s), "crashes": crash.crashes if crash else 0,
                        "last_crash": crash.last_error if crash else None, "stuck": False})
        for m in self._stuck.values():
            out.append({**m.summary(self.keep_alive_s), "crashes": 0, "last_crash": None, "stuck": True})
        return out

    def crashes(self) -> dict[str, dict]:
        """Per model whose worker ever crashed: {crashes, last_error, last_crash_at}."""
        return {name: {"crashes": c.crashes, "last_error": c.last_error, "last_crash_at": c.last_crash_at}
                for name, c in self._crashes.items()}

    def loading(self) -> list[str]:
        return list(self._loading)

    def engine_of(self, name: str) -> Engine | None:
        m = self._loaded.get(name)
        return m.engine if m else None

    async def close(self) -> None:
        for task in list(self._tasks):  # unloads the keep-alive or a crash started
            with contextlib.suppress(asyncio.CancelledError, JarvisError):
                await task
        for loaded in list(self._loaded.values()):
            await self._unload(loaded, "shutdown")
        if self.early_open is not None:  # never asked for: free what it opened (a join, off the loop)
            early, self.early_open = self.early_open, None
            await asyncio.get_running_loop().run_in_executor(self._executor, early.discard)
        if self._gpu is not None:  # NVML's shutdown too runs off the loop
            await asyncio.get_running_loop().run_in_executor(self._executor, self._gpu.close)
        await asyncio.to_thread(self._executor.shutdown, wait=True)  # a join: never on the loop

    # ---- loading and eviction --------------------------------------------------------------
    async def _ensure_loaded(self, info: LocalModel) -> tuple[LoadedModel, bool]:
        """(the loaded model, warm): warm is False when this request waited for a load, its own or
        one another request started."""
        waited = False
        while True:
            loaded = self._loaded.get(info.name)
            if loaded is not None and loaded.engine.crash is not None:  # crashed; its unload may still be queued
                await self._unload(loaded, "crashed")
                continue
            if loaded is not None and loaded.info.identity == info.identity:
                loaded.last_used = time.monotonic()
                return loaded, not waited
            if loaded is not None:  # the file changed on disk: reload it
                await self._wait_idle_and_unload(loaded)
                continue
            pending = self._loading.get(info.name)
            if pending is not None:  # someone is loading it already: share that load
                waited = True
                await asyncio.shield(pending)
                continue
            future = asyncio.get_running_loop().create_future()
            self._loading[info.name] = future
            try:
                await self._make_room(info)
                loaded = await self._load(info)
                future.set_result(None)
                return loaded, False
            except asyncio.CancelledError:
                # The request that started the load gave up; the ones sharing it did not. Let them
                # re-check and load it themselves instead of failing with an empty ModelLoadError.
                future.set_result(None)
                raise
            except BaseException as e:
                future.set_exception(e if isinstance(e, JarvisError) else ModelLoadError(info.path, str(e)))
                future.exception()  # mark retrieved: waiters re-check and raise their own
                raise
            finally:
                del self._loading[info.name]

    async def _load(self, info: LocalModel) -> LoadedModel:
        loop = asyncio.get_running_loop()

        def crashed(error: EngineCrashed) -> None:  # on the dying worker thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is ending
                loop.call_soon_threadsafe(self._on_crash, engine, error)

        engine = Engine(info.name, info.path, info.chat_template, self.config, self.bus, on_crash=crashed)
        lock, state = threading.Lock(), {"abandoned": False, "loaded": False}
        early = None
        if self.early_open is not None and self.early_open.path == Path(info.path):
            early, self.early_open = self.early_open, None

        def load() -> None:
            try:
                engine.load(early)
            finally:
                if early is not None:  # frees it when this load failed before taking it; else nothing
                    early.discard()
            with lock:
                state["loaded"] = not state["abandoned"]
            if not state["loaded"]:  # nobody will ever unload it: stop its worker thread now
                engine.close()

        try:
            # llama.cpp cannot be interrupted mid-load. A request cancelled meanwhile must not leave
            # a loaded engine (and its worker thread) behind that no one knows of.
            await asyncio.shield(loop.run_in_executor(self._executor, load))
        except asyncio.CancelledError:
            with lock:
                state["abandoned"] = True
                loaded_already = state["loaded"]
            if loaded_already:
                self._executor.submit(engine.close)
            raise
        except ModelLoadError as e:
            self.bus.emit(ModelRecord(info.name, "load_failed", reason=e.reason))
            raise
        loaded = LoadedModel(info, engine)
        self._loaded[info.name] = loaded
        self.bus.emit(ModelRecord(info.name, "loaded", engine.load_ms, engine.memory_bytes, engine.gpu_layers))
        log.info("loaded %s in %.0f ms", info.name, engine.load_ms)
        return loaded

    def _on_crash(self, engine: Engine, error: EngineCrashed) -> None:
        """On the loop: count the crash and unload the dead engine (its requests failed already)."""
        before = self._crashes.get(engine.name)
        self._crashes[engine.name] = CrashCount((before.crashes if before else 0) + 1, error.reason, time.time())
        loaded = self._loaded.get(engine.name)
        if loaded is not None and loaded.engine is engine:
            task = asyncio.get_running_loop().create_task(self._unload(loaded, "crashed"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _memory_budget(self, used: int | None = None) -> int:
        """Bytes all loaded models may take: the setting, else free GPU memory when layers go to the
        GPU (NVML), else available RAM (psutil), less a margin. Loaded models (`used`) count as
        available. Blocking (NVML, /proc): _needs_room runs it in the loader thread."""
        if self.memory_budget_bytes:
            return self.memory_budget_bytes
        if used is None:
            used = sum(m.engine.memory_bytes for m in self._loaded.values())
        free = self._gpu_free_bytes() if self.offloads_to_gpu() else None
        if free is None:
            free = psutil.virtual_memory().available
        return int(free * MEMORY_MARGIN) + used

    def offloads_to_gpu(self) -> bool:
        return self.config.gpu_layers != 0 and (self._gpu is not None or backend.supports_gpu_offload())

    def _gpu_free_bytes(self) -> int | None:
        if self._gpu is None:
            self._gpu = GpuProbe()
        devices = [d for d in self._gpu.snapshot() if d.memory_total_bytes is not None]
        if not devices:
            return None
        return sum(d.memory_total_bytes - (d.memory_used_bytes or 0) for d in devices)

    async def _needs_room(self, info: LocalModel) -> bool:
        if len(self._loaded) >= self.max_loaded:
            return True
        if not self._loaded:
            return False
        used = sum(m.engine.memory_bytes for m in self._loaded.values())  # read here: the loop owns _loaded
        budget = await asyncio.get_running_loop().run_in_executor(self._executor, self._memory_budget, used)
        return used + info.size_bytes > budget

    async def _make_room(self, info: LocalModel) -> None:
        cond = self._condition()
        while await self._needs_room(info):
            idle = [m for m in self._loaded.values() if not m.busy]
            if idle:
                victim = min(idle, key=lambda m: m.last_used)
                await self._unload(victim, f"evicted for {info.name}")
                continue
            async with cond:  # every loaded model is busy: wait for one to finish
                await cond.wait()

    async def _wait_idle_and_unload(self, loaded: LoadedModel) -> None:
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: not loaded.busy)
        await self._unload(loaded, "file changed")

    async def _unload(self, loaded: LoadedModel, reason: str) -> None:
        if self._loaded.get(loaded.info.name) is not loaded:
            return
        del self._loaded[loaded.info.name]
        self._cancel_unload(loaded)
        if not await asyncio.get_running_loop().run_in_executor(self._executor, loaded.engine.close):
            # Its worker is stuck inside llama.cpp: the memory stays allocated, so say "stuck",
            # never "unloaded" (the budget keeps counting it; a restart is what frees it).
            self._stuck[loaded.info.name] = loaded
            self.bus.emit(ModelRecord(loaded.info.name, "stuck", memory_bytes=loaded.engine.memory_bytes,
                                      reason=f"its worker did not stop ({reason}); restart JARVIS to free its memory"))
            return
        self.bus.emit(ModelRecord(loaded.info.name, "unloaded", reason=reason))
        log.info("unloaded %s (%s)", loaded.info.name, reason)

    # ---- keep-alive ------------------------------------------------------------------------
    def _cancel_unload(self, loaded: LoadedModel) -> None:
        if loaded.unload_handle is not None:
            loaded.unload_handle.cancel()
            loaded.unload_handle = None

    def _schedule_unload(self, loaded: LoadedModel) -> None:
        self._cancel_unload(loaded)
        if self.keep_alive_s < 0 or loaded.leases > 0:
            return
        loop = asyncio.get_running_loop()

        def expire() -> None:
            loaded.unload_handle = None
            if loaded.busy:
                return self._schedule_unload(loaded)
            task = loop.create_task(self._unload(loaded, "keep-alive expired"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        loaded.unload_handle = loop.call_later(self.keep_alive_s, expire)
