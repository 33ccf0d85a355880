"""Opening a model in llama.cpp: the GGUF file checked, its weights loaded, a context made. Every
engine opens its model through open_model(); EarlyOpen runs the same open ahead of its engine.

Why ahead: `jarvis serve` spends ~0.3 s of one core importing Python (the settings, the HTTP
stack, the runtime) before its warm-up load could begin, and llama.cpp's open is ~0.3 s of native
work (weights, then clearing the KV cache) that holds no GIL. `jarvis serve` therefore begins the
default model's open as soon as the settings and llama.cpp are imported (http/serve.py), on a
thread of its own, and the rest is imported beside it on the other core. The engine that later
asks for exactly the same open (OpenSpec: file, its size and mtime, every parameter) takes the
handles; any other open frees them. This module imports only llama.cpp's bindings and the engine's
config, not the engine, so that the open can begin before the rest of the engine is imported.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from jarvis.engine import backend
from jarvis.engine.config import EngineConfig, auto_threads, slot_context
from jarvis.engine.handles import LlamaContext, LlamaModel
from jarvis.errors import ModelLoadError
from jarvis.gguf_header import GGUFError, read_header

log = logging.getLogger("jarvis.engine")


@dataclass(frozen=True)
class OpenSpec:
    """Everything an open depends on: two equal specs give the same handles."""

    path: Path
    size: int  # the file as it was when the spec was made: a file replaced since is another one
    mtime_ns: int
    gpu_layers: int  # what llama.cpp is asked for, after the check that this build can offload
    extra_buffers: bool  # llama.cpp's repacked weight buffers (engine.weight_repacking)
    n_seq: int  # slots
    context_length: int  # engine.context_length: a slot's tokens, 0 = the trained length (capped)
    n_batch: int
    n_threads: int

    @classmethod
    def for_engine(cls, path: Path, cfg: EngineConfig) -> tuple["OpenSpec", str]:
        """The open an engine of `cfg` makes of `path`, and the note to show when GPU layers were
        asked of a build that cannot offload (empty otherwise). ModelLoadError when the file is gone."""
        note, gpu_layers = "", cfg.gpu_layers
        if gpu_layers != 0 and not backend.supports_gpu_offload():
            note = backend.CPU_ONLY_NOTE
            backend.warn_cpu_only_once()
            gpu_layers = 0
        try:
            st = os.stat(path)
        except OSError as e:
            raise ModelLoadError(Path(path), e.strerror or str(e)) from None
        return cls(Path(path), st.st_size, st.st_mtime_ns, gpu_layers, backend.extra_buffers_allowed(cfg.weight_repacking),
                   cfg.batch_size, cfg.context_length, max(cfg.prefill_chunk, cfg.batch_size),
                   cfg.n_threads or auto_threads()), note


@dataclass
class Opened:
    """The handles of one open; whoever holds them closes them."""

    model: LlamaModel
    ctx: LlamaContext

    def close(self) -> None:
        self.ctx.close()
        self.model.close()


def open_model(spec: OpenSpec) -> Opened:
    """Check the file, load the weights, make the context. Raises ModelLoadError, with what
    llama.cpp said when it refused."""
    try:  # the file may have changed since the catalog read it: never hand llama.cpp an unchecked file
        read_header(spec.path)
    except (GGUFError, OSError) as e:
        raise ModelLoadError(spec.path, str(e)) from None
    backend.recent_problems.clear()
    try:
        model = LlamaModel(spec.path, spec.gpu_layers, spec.extra_buffers)
    except ModelLoadError as e:
        said = "; ".join(list(backend.recent_problems)[-2:])
        raise ModelLoadError(spec.path, e.reason + (f" (llama.cpp: {said})" if said else "")) from None
    n_ctx = slot_context(spec.context_length, model.n_ctx_train)
    try:
        ctx = LlamaContext(model, spec.n_seq, n_ctx, spec.n_batch, spec.n_threads)
    except ModelLoadError:
        model.close()
        raise
    return Opened(model, ctx)


class EarlyOpen:
    """open_model(spec) begun now on a thread of its own, for an engine that asks for it later."""

    def __init__(self, spec: OpenSpec):
        self.spec = spec
        self._opened: Opened | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._open, name="jarvis-early-open", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            with backend.logs_discarded():  # ~2,300 lines that would each wait for the GIL (backend.py)
                opened = open_model(self.spec)
        except ModelLoadError as e:  # the engine's own open will meet (and report) the same, with its logs
            log.info("opening %s ahead of its engine failed: %s", self.spec.path, e.reason)
            return
        with self._lock:
            self._opened = opened

    def _claim(self) -> Opened | None:
        """What the open made, once (the next caller gets None); waits for it to finish."""
        self._thread.join()
        with self._lock:  # take and discard may come from different threads
            opened, self._opened = self._opened, None
        return opened

    def take(self, spec: OpenSpec) -> Opened | None:
        """Its handles when `spec` is the one opened (the caller owns them from now on), else None,
        and the handles are freed. Only the first call gets them."""
        opened = self._claim()
        if opened is not None and spec != self.spec:
            log.info("the model opened ahead (%s) is not the one asked for; freeing it", self.spec.path)
            opened.close()
            return None
        return opened

    def discard(self) -> None:
        """Free the handles if nobody took them (waits for the open to finish)."""
        opened = self._claim()
        if opened is not None:
            opened.close()
