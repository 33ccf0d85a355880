"""What one engine needs of the settings, and the sizes derived from them (a slot's context, the
thread count). Kept apart from engine.py so that opening a model (opening.py) can start before
the rest of the engine is imported."""

from __future__ import annotations

from dataclasses import dataclass

from jarvis.config import EngineSettings
from jarvis.engine.cores import compute_core_count

MAX_CTX_DEFAULT = 8192


_DEFAULTS = EngineSettings()  # the defaults are the settings' own, never a second copy


def slot_context(configured: int, trained: int) -> int:
    """The tokens one slot holds: engine.context_length (0 = the trained length, capped), never
    more than the model was trained for."""
    n_ctx = configured or min(trained, MAX_CTX_DEFAULT)
    return min(n_ctx, trained or n_ctx)


def auto_threads(cores: int | None = None) -> int:
    """engine.n_threads = 0: one thread per physical core this process may use, performance cores
    only (cores.py; llama.cpp's own default). Measured on a quiet 2-core machine against
    llama-server (README, Performance): 2 threads gave 1.43x the tok/s of 1 for one stream and
    1.59x for four. Under a neighbour's load one thread did better (a ggml worker that loses its
    core stalls every step at the barrier), which is what an explicit engine.n_threads is for."""
    return cores or compute_core_count()


@dataclass(frozen=True)
class EngineConfig:
    """What one engine needs of the [engine] and [gpu] settings; ranges are checked there."""

    batch_size: int = _DEFAULTS.batch_size
    context_length: int = _DEFAULTS.context_length  # per slot; 0 = the model's trained length, capped
    prefill_chunk: int = _DEFAULTS.prefill_chunk
    n_threads: int = _DEFAULTS.n_threads
    max_queue: int = _DEFAULTS.max_queue
    request_timeout_s: float = _DEFAULTS.request_timeout_s  # 0 = no limit (see resolve_timeout)
    truncate: bool = _DEFAULTS.truncate
    lookup_draft: int = _DEFAULTS.lookup_draft  # prompt-lookup speculation: most tokens drafted per step; 0 = off
    prompt_cache_mb: int = _DEFAULTS.prompt_cache_mb  # host memory for saved prompts (prompt_cache.py); 0 = off
    stream_interval_ms: float = _DEFAULTS.stream_interval_ms  # a request's text wakes the loop at most this often; 0 = every step
    weight_repacking: str = _DEFAULTS.weight_repacking  # llama.cpp's extra weight buffers: auto | on | off
    worker_nice: int = _DEFAULTS.worker_nice  # added to the worker thread's nice value (priority.py)
    pin_threads: bool = _DEFAULTS.pin_threads  # one core per compute thread where they fill the cores (affinity.py)
    gpu_layers: int = 0  # what to ask llama.cpp for; -1 = all

    @classmethod
    def from_settings(cls, settings) -> "EngineConfig":
        e, g = settings.engine, settings.gpu
        return cls(batch_size=e.batch_size, context_length=e.context_length, prefill_chunk=e.prefill_chunk,
                   n_threads=e.n_threads, max_queue=e.max_queue, request_timeout_s=e.request_timeout_s,
                   truncate=e.truncate, lookup_draft=e.lookup_draft, prompt_cache_mb=e.prompt_cache_mb,
                   stream_interval_ms=e.stream_interval_ms, weight_repacking=e.weight_repacking,
                   worker_nice=e.worker_nice, pin_threads=e.pin_threads, gpu_layers=g.gpu_layers if g.use_gpu else 0)
