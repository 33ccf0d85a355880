"""Opening a model in llama.cpp: the GGUF file checked, its weights loaded, a context made. Every
engine opens its model through open_model(); EarlyOpen (early_open.py) runs the same open ahead of its engine.

Why ahead: `jarvis serve` spends ~0.3 s of one core importing Python (the settings, the HTTP
stack, the runtime) before its warm-up load could begin, and llama.cpp's open is ~0.3 s of native
work (weights, then clearing the KV cache) that holds no GIL. `jarvis serve` therefore begins the
default model's open as soon as the settings are imported (http/serve.py), on a thread of its own
that also imports llama.cpp, and the rest is imported beside it on the other core. The engine that later
asks for exactly the same open (OpenSpec: file, its size and mtime, every parameter) takes the
handles; any other open frees them. This module imports only llama.cpp's bindings and the engine's
config, not the engine, so that the open can begin before the rest of the engine is imported.
"""

from __future__ import annotations

import logging
import os
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
