"""The cache levels behind one interface: `await lookup(request, key, info)` -> a CacheHit (the
reply and which level answered) or None; `store(key, request, info, reply)` after a generation.

    L1 "hit"       memory (jarvis.cache.memory): exact key, LRU, a TTL per kind
    L2 "disk"      SQLite in the data folder (jarvis.cache.disk): the L1's key plus the model
                   file's header hash; survives restarts; holds what the L1 evicted
    "semantic"     opt-in: the nearest earlier prompt of the same scope by embedding, the
                   false-hit guards applied (jarvis.cache.semantic, jarvis.cache.guards)

Every store writes the L1 and (on the disk thread) the L2. All file work (SQLite, reading a
model's header, the vector index) runs on one thread of the cache's own; the loop only awaits it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Awaitable, Callable

import cachetools
import numpy as np

from jarvis.cache.disk import DiskLevel
from jarvis.cache.identity import FileIdentities
from jarvis.cache.keys import disk_key, kind_of, semantic_scope, semantic_text
from jarvis.cache.memory import CacheStats, ResponseCache
from jarvis.cache.semantic import SemanticIndex
from jarvis.errors import JarvisError
from jarvis.request import ChatRequest, Reply

log = logging.getLogger("jarvis.cache")

Embed = Callable[[str], Awaitable[np.ndarray]]  # one text -> its unit vector


@dataclass(frozen=True)
class CacheHit:
    reply: Reply  # its record's `cache` says the level (and, for semantic, the similarity and match)
    level: str  # hit (L1) | disk (L2) | semantic
    similarity: float = 0.0
    match_id: str = ""


def cache_path(data_path: Path) -> Path:
    return Path(data_path) / "cache" / "replies.sqlite3"


class CacheLevels:
    def __init__(self, settings, data_path: Path, *, embed: Embed | None = None,
                 clock: Callable[[], float] | None = None):
        """`settings` is the [cache] section (CacheSettings); `clock` replaces both the L1's
        monotonic clock and the L2's wall clock (tests)."""
        self.settings = settings
        self.enabled = settings.enabled
        self.memory = ResponseCache(settings.enabled, settings.max_size, settings.ttl_s,
                                    clock=clock or time.monotonic)
        self.disk = DiskLevel(cache_path(data_path), int(settings.disk_max_mb * 2**20), clock=clock or time.time)
        self.semantic = SemanticIndex(self.disk)
        self.identities = FileIdentities()
        self._embed = embed
        self.semantic_status = self._semantic_status()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._vectors: cachetools.LRUCache = cachetools.LRUCache(256)  # key -> (scope, text, vector) of misses
        self._tasks: set[asyncio.Task] = set()
        self._disk_figures: dict = {}  # the L2's counts as of its last write (stats never touch the file)
        self._closed = False

    @classmethod
    def from_settings(cls, settings, catalog=None, manager=None, **kw) -> "CacheLevels":
        """`catalog` and `manager` give the semantic level its embedding model (cache.semantic_model)."""
        embed = None
        if settings.cache.semantic and settings.cache.semantic_model and catalog is not None and manager is not None:
            embed = model_embedder(settings.cache.semantic_model, catalog, manager)
        return cls(settings.cache, settings.data_path, embed=embed, **kw)

    def _semantic_status(self) -> str:
        if not self.settings.semantic:
            return "off"
        if not self.settings.semantic_model:
            return ("off: cache.semantic is on but cache.semantic_model is empty. Name an embedding model "
                    "from `jarvis models` (the bundled SmolLM2 works) in settings.")
        return "on" if self._embed is not None else "off: no embedding model given to the cache"

    # ---- the disk thread --------------------------------------------------------------------
    def _thread(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._closed:
            raise RuntimeError("the cache is closed")
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jarvis-cache-disk")
        return self._pool

    async def _on_disk(self, fn, *args):
        return await asyncio.wrap_future(self._thread().submit(fn, *args))

    def _ttl(self, kind: str) -> float:
        return self.settings.ttl_for(kind)

    @property
    def coalesced(self) -> int:
        return self.memory.coalesced

    @coalesced.setter
    def coalesced(self, value: int) -> None:
        self.memory.coalesced = value

    # ---- the interface ----------------------------------------------------------------------
    async def lookup(self, request: ChatRequest, key: str, info) -> CacheHit | None:
        """The first level that has an answer, or None. Never raises for a cache problem."""
        if not self.enabled or self._closed:
            return None
        reply = self.memory.get(key)
        if reply is not None:
            return self._hit(reply, "hit")
        try:
            return await self._lookup_behind_memory(request, key, info)
        except RuntimeError:
            if self._closed:  # shutting down while it looked: a miss, not a failed request
                return None
            raise

    async def _lookup_behind_memory(self, request: ChatRequest, key: str, info) -> CacheHit | None:
        found, file_id = await self._on_disk(self._disk_get, key, info.identity)
        if found is not None:
            reply, left_s = found
            self.memory.put(key, reply, left_s)  # the next one is an L1 hit, for the time it has left
            return self._hit(reply, "disk")
        return await self._semantic_lookup(request, key, info, file_id)

    def store(self, key: str | None, request: ChatRequest, info, reply: Reply) -> None:
        """Keep a generated reply in every level (the disk and the semantic index on the disk thread)."""
        if not self.enabled or self._closed or key is None or reply.record.finish_reason not in ("stop", "length"):
            return
        kind = kind_of(request)
        ttl = self._ttl(kind)
        self.memory.put(key, reply, ttl)
        self._thread().submit(self._disk_put, key, info.identity, info.name, kind, ttl, reply)
        text = semantic_text(request) if self.semantic_status == "on" else None
        if text is None:
            return
        pending = self._vectors.pop(key, None)
        if pending is not None:
            self._thread().submit(self._semantic_add, key, info, pending[0], text, pending[2], ttl)
        else:  # not looked up first (a regeneration): embed it in the background
            task = asyncio.get_running_loop().create_task(self._embed_and_add(key, request, info, text, ttl))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        """Count what the disk file holds (on the disk thread), so stats show it before any lookup."""
        if self.enabled and not self._closed:
            self.refresh_disk_figures()

    def clear(self, model: str | None = None) -> concurrent.futures.Future:
        """Empty every level (or one model's entries): the L1 now, the file on the disk thread."""
        self.memory.clear(model)
        self._vectors.clear()
        if self._closed:
            done: concurrent.futures.Future = concurrent.futures.Future()
            done.set_result(0)
            return done
        return self._thread().submit(self._disk_clear, model)

    async def close(self) -> None:
        """Let pending disk writes land, then end the disk thread; lookups and stores are no-ops after."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except BaseException:  # noqa: BLE001 - a cancelled background embedding
                pass
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.submit(self.disk.close)
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)

    def stats(self) -> CacheStats:
        s = self.memory.stats()
        s.levels = {"memory": self.memory.level_stats(), "disk": self._disk_level_figures(),
                    "semantic": {"status": self.semantic_status, "threshold": self.settings.semantic_threshold,
                                 "entries": self._disk_figures.get("prompts", 0), "hits": self.semantic.hits,
                                 "misses": self.semantic.misses, "vetoes": self.semantic.vetoes,
                                 "evictions": 0, "bytes": 0}}
        return s

    def _disk_level_figures(self) -> dict:
        d = self.disk
        return {"entries": self._disk_figures.get("entries", 0), "bytes": d._total, "max_bytes": d.max_bytes,
                "hits": d.hits, "misses": d.misses, "evictions": d.evictions, "path": str(d.path),
                "unavailable": d.unavailable}

    def refresh_disk_figures(self) -> concurrent.futures.Future:
        """Count what the file holds (on the disk thread) for the next stats()."""
        return self._thread().submit(self._count)

    # ---- what runs on the disk thread -------------------------------------------------------
    def _count(self) -> dict:
        if self.disk._db is None and not self.disk.path.exists():
            return self._disk_figures
        self._disk_figures = self.disk.counts()
        return self._disk_figures

    def _disk_get(self, key: str, identity: tuple) -> tuple[tuple[Reply, float] | None, str]:
        file_id = self.identities.of(identity)
        found = self.disk.get(disk_key(key, file_id))
        if not self._disk_figures:
            self._count()
        return found, file_id

    def _disk_put(self, key: str, identity: tuple, model: str, kind: str, ttl: float, reply: Reply) -> None:
        self.disk.put(disk_key(key, self.identities.of(identity)), model, kind, ttl, reply)
        self._count()

    def _disk_clear(self, model: str | None) -> int:
        if self.disk._db is None and not self.disk.path.exists():
            return 0  # nothing was ever written: do not create the file to empty it
        n = self.disk.clear(model)
        self._count()
        return n

    def _semantic_add(self, key: str, info, scope: str, text: str, vector: np.ndarray, ttl: float) -> None:
        reply_key = disk_key(key, self.identities.of(info.identity))
        self.semantic.add(scope, reply_key, info.name, text, vector, min(ttl, self._ttl("embeddings")))
        self._count()

    def _semantic_find(self, scope: str, vector: np.ndarray, text: str):
        match = self.semantic.find(scope, vector, text, self.settings.semantic_threshold)
        if match is None or match.vetoed:
            return match, None
        found = self.disk.get(match.prompt.reply_key, count=False)
        if found is None:  # its reply left the L2 (size cap, TTL): no answer to give
            self.semantic.misses += 1
            return None, None
        self.semantic.hits += 1
        return match, found

    # ---- the semantic level -----------------------------------------------------------------
    async def _vector(self, text: str) -> np.ndarray | None:
        try:
            return await self._embed(text)
        except JarvisError as e:
            if not self.semantic_status.startswith("off"):
                self.semantic_status = f"off: the embedding model {self.settings.semantic_model!r} failed ({e})"
                log.warning("The semantic cache is %s. Set cache.semantic_model to an embedding model from "
                            "`jarvis models`.", self.semantic_status)
            return None

    async def _semantic_lookup(self, request: ChatRequest, key: str, info, file_id: str) -> CacheHit | None:
        if self.semantic_status != "on":
            return None
        text = semantic_text(request)
        if text is None:
            return None
        vector = await self._vector(text)
        if vector is None:
            return None
        scope = semantic_scope(request, info.identity, file_id)
        self._vectors[key] = (scope, text, vector)
        match, found = await self._on_disk(self._semantic_find, scope, vector, text)
        if match is None or found is None:
            return None
        reply, left_s = found
        self.memory.put(key, reply, left_s)
        return self._hit(reply, "semantic", match.similarity, f"prompt-{match.prompt.id}")

    async def _embed_and_add(self, key: str, request: ChatRequest, info, text: str, ttl: float) -> None:
        vector = await self._vector(text)
        if vector is None:
            return
        file_id = await self._on_disk(self.identities.of, info.identity)
        await self._on_disk(self._semantic_add, key, info, semantic_scope(request, info.identity, file_id),
                            text, vector, ttl)

    @staticmethod
    def _hit(reply: Reply, level: str, similarity: float = 0.0, match_id: str = "") -> CacheHit:
        record = replace(reply.record, cache=level, cache_similarity=round(similarity, 4), cache_match=match_id)
        return CacheHit(Reply(reply.text, record), level, similarity, match_id)


def model_embedder(name: str, catalog, manager) -> Embed:
    """Embeddings from a catalog model through the manager (leased, on the model's embedder thread)."""
    async def embed(text: str) -> np.ndarray:
        info = await catalog.lookup(name)
        async with manager.lease(info) as lease:
            result = await lease.backend.embed([text])
        return result.vectors[0]

    return embed
