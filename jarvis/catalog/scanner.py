"""Which model files exist, as a snapshot the event loop reads and a scan on the catalog's thread replaces.

A file whose header cannot be parsed is listed as unreadable with the reason, and never stops the
others from listing. The event loop never scans: it reads an immutable CatalogSnapshot (see Catalog).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from jarvis.catalog import index
from jarvis.catalog.model_info import LocalModel, ModelInfo, bundled_model_path, read_gguf_info
from jarvis.errors import CatalogNotReady, JarvisError, ModelLoadError, ModelNotFound

log = logging.getLogger("jarvis.catalog")
IN_THREAD_MAX = 4  # new files a scan parses on its own thread; more go to a child process


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalog at one moment: immutable, so the event loop reads it without any lock."""

    models: tuple[ModelInfo, ...] = ()
    scanned: bool = False  # False only before the first scan finished: then it knows nothing yet

    def usable(self) -> list[ModelInfo]:
        return [m for m in self.models if m.ok]

    def default_name(self, configured: str = "") -> str:
        if configured:
            return configured
        if not self.scanned:
            raise CatalogNotReady()  # not "no model": nothing has been looked at yet
        bundled = [m for m in self.models if m.source == "bundled" and m.ok]
        usable = bundled or self.usable()
        if not usable:
            raise ModelNotFound("(default)", [])
        return usable[0].name

    def get(self, name: str, default: str = "") -> ModelInfo:
        """A model by catalog name only: names never become paths (no traversal). An empty name
        means the default (`default`, the configured one, else the bundled model)."""
        name = name or self.default_name(default)
        for m in self.models:
            if m.name == name:
                if not m.ok:
                    raise ModelLoadError(m.location, m.error or "unreadable")
                return m
        if not self.scanned:
            raise CatalogNotReady()
        raise ModelNotFound(name, [m.name for m in self.usable()])


@dataclass(eq=False)
class Catalog:
    """The models JARVIS can load, as a snapshot the event loop reads and a scanner replaces.

    - `snapshot()`: the latest CatalogSnapshot. Never blocks, never touches the disk: loop-safe.
      Before the first scan it is empty and `scanned` is False.
    - `start()`: begin the first scan on the catalog's own thread and return at once (start-up
      listens while it runs); `await ready()`: the first complete snapshot.
    - `rescan()`: blocking (stats files, parses new or changed headers); threads only. Unchanged
      files are not parsed again, across restarts too: the first scan starts from the header index
      in the data folder (index.py) and a scan that changed something writes it back.
    - `await refresh()`: rescan() on the catalog's own thread; `await lookup(name)`: the snapshot's
      answer once the first scan is done, refreshed once first when the name is missing (a file
      dropped in a moment ago).
    - `await watch()`: refresh every `rescan_interval_s` until cancelled, so a new .gguf shows up
      without a restart. `close()` stops a scan in progress and the thread.
    - `headers_read`: how many headers this catalog has parsed (here or in the reader child);
      `scan_hook`: called on the scanning thread at the start of every scan (tests hold a scan with it).
    """

    models_dirs: list[Path] = field(default_factory=list)
    include_bundled: bool = True
    checkout_dir: Path | None = None  # shown as "models/" rather than its full path
    rescan_interval_s: float = 2.0
    index_path: Path | None = None  # the persisted header index; None: kept in memory only
    scan_hook: Callable[[], None] | None = field(default=None, repr=False)
    headers_read: int = field(default=0, repr=False)
    _cache: dict[index.Key, ModelInfo] = field(default_factory=dict, repr=False)
    _index_loaded: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one scan at a time
    _snapshot: CatalogSnapshot = field(default_factory=CatalogSnapshot, repr=False)
    _executor: ThreadPoolExecutor | None = field(default=None, repr=False)
    _first: Future | None = field(default=None, repr=False)  # the first scan, once started
    _closing: bool = field(default=False, repr=False)
    # Models other backend sources publish (a remote server's list), by source, set from the loop;
    # a scan's files come first in the snapshot.
    _files: tuple[LocalModel, ...] = field(default=(), repr=False)
    _published: dict[str, tuple[ModelInfo, ...]] = field(default_factory=dict, repr=False)
    _swap: threading.Lock = field(default_factory=threading.Lock, repr=False)  # held for one assignment

    @classmethod
    def from_settings(cls, settings) -> "Catalog":
        from jarvis.config import checkout_models_dir

        checkout = checkout_models_dir()
        dirs = [settings.user_models_path] + ([checkout] if checkout else []) \
            + [Path(d).expanduser() for d in settings.general.models_dirs]
        return cls(models_dirs=dirs, checkout_dir=checkout, index_path=settings.data_path / "model-index.json")

    # ---- loop side: never blocks ---------------------------------------------------------
    def snapshot(self) -> CatalogSnapshot:
        return self._snapshot  # one attribute read: the scanner swaps whole snapshots

    def publish(self, served_by: str, infos: list[ModelInfo]) -> None:
        """Publish the models a backend source serves (a remote's, after each probe), replacing
        what that source published before; the files stay as scanned. The same list again (a
        probe that found nothing new) leaves the snapshot as it is."""
        infos = tuple(infos)
        with self._swap:
            if self._published.get(served_by) == infos:
                return
            self._published[served_by] = infos
            self._snapshot = CatalogSnapshot(self._files + self._others(), scanned=self._snapshot.scanned)

    def _others(self) -> tuple[ModelInfo, ...]:
        return tuple(m for infos in self._published.values() for m in infos)

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jarvis-catalog")
        return self._executor

    def start(self) -> None:
        """Begin the first scan on the catalog's thread unless one has begun; returns at once."""
        if self._first is None or (self._first.done() and not self._snapshot.scanned):  # or it failed
            self._first = self._thread().submit(self.rescan)

    async def ready(self) -> CatalogSnapshot:
        """The first complete snapshot: awaits the first scan (started here if need be). A caller
        that gives up waiting does not cancel the scan others wait for."""
        if not self._snapshot.scanned:
            self.start()
            await asyncio.shield(asyncio.wrap_future(self._first))
        return self._snapshot

    async def refresh(self) -> CatalogSnapshot:
        return await asyncio.get_running_loop().run_in_executor(self._thread(), self.rescan)

    async def lookup(self, name: str, default: str = "") -> ModelInfo:
        """ModelInfo by catalog name ("" = the default). Raises ModelNotFound / ModelLoadError;
        never before the first scan finished (it waits for it)."""
        snapshot = await self.ready()
        try:
            return snapshot.get(name, default)
        except JarvisError:
            pass  # maybe added or repaired since the last scan: look once more
        return (await self.refresh()).get(name, default)

    async def watch(self) -> None:
        await self.ready()
        while True:
            await asyncio.sleep(self.rescan_interval_s)
            await self.refresh()

    def close(self) -> None:
        """Stop the scanner thread; a scan in progress stops after the file it is reading."""
        if self._executor is not None:
            self._closing = True
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
            self._closing = False

    # ---- scanner side: blocking ----------------------------------------------------------
    def _candidates(self) -> list[tuple[Path, str]]:
        found: list[tuple[Path, str]] = []
        if self.include_bundled and (bundled := bundled_model_path()):
            found.append((bundled, "bundled"))
        for folder in self.models_dirs:
            try:
                entries = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".gguf")
            except OSError:
                continue
            label = "models/" if Path(folder) == self.checkout_dir else str(folder)
            found.extend((p, label) for p in entries)
        return found

    def rescan(self) -> CatalogSnapshot:
        """Read the folders again and publish a new snapshot. Blocking: call it from a thread."""
        listed: list[tuple[Path, str, str, index.Key | None]] = []  # path, name, source, key
        seen_names: set[str] = set()
        seen_paths: set[Path] = set()
        with self._lock:
            if self.scan_hook is not None:
                self.scan_hook()
            if not self._index_loaded and self.index_path is not None:
                self._cache = {**index.load(self.index_path), **self._cache}
            self._index_loaded = True
            for path, source in self._candidates():
                try:
                    real = path.resolve(strict=False)
                except (OSError, RuntimeError):  # symlink loops
                    real = path
                if real in seen_paths:
                    continue
                seen_paths.add(real)
                name = path.stem if path.suffix.lower() == ".gguf" else path.name  # X.GGUF is "X" too
                while name in seen_names:
                    name += "-2"
                seen_names.add(name)
                try:
                    st = path.stat()
                    key = (str(path), st.st_size, st.st_mtime_ns)
                except OSError:
                    key = None
                listed.append((path, name, source, key))
            known = {key: self._cache.get(key) for _, _, _, key in listed if key}
            todo = [(path, name, source) for path, name, source, key in listed if not key or known[key] is None]
            parsed = self._read_headers(todo)
            if parsed is None:
                return self._snapshot  # closing: leave the last complete snapshot in place
            self.headers_read += len(parsed)
            infos, cache = [], {}
            for path, name, source, key in listed:
                info = parsed.get(path) or known[key]
                if (info.name, info.source) != (name, source):  # the same file, listed under another name
                    info = dataclasses.replace(info, name=name, source=source)
                if key:
                    cache[key] = info
                infos.append(info)
            changed = cache != self._cache
            self._cache = cache  # only files still there: the cache never outgrows the folders
            with self._swap:
                self._files = tuple(infos)
                self._snapshot = CatalogSnapshot(self._files + self._others(), scanned=True)
            if changed and self.index_path is not None:  # after publishing: the loop need not wait for it
                index.save(self.index_path, cache.values())
            return self._snapshot

    def _read_headers(self, todo: list[tuple[Path, str, str]]) -> dict[Path, ModelInfo] | None:
        """Parse headers; None when close() interrupted. A few files are parsed on this thread, many
        in a child process (reader.py says why)."""
        if len(todo) > IN_THREAD_MAX:
            from jarvis.catalog.reader import read_in_child

            try:
                return read_in_child(todo, stop=lambda: self._closing)
            except (OSError, ValueError) as e:  # no child process here: read them on this thread
                log.warning("reading %d model headers in a child process failed (%s); reading them here",
                            len(todo), e)
        out: dict[Path, ModelInfo] = {}
        for path, name, source in todo:
            if self._closing:
                return None
            out[path] = read_gguf_info(path, name, source)
        return out
