"""Plain, frozen records the core emits; loggers (PerfMonitor, JSONL log, /metrics, the UI) consume them.

Nothing that emits a record knows who listens (vLLM v1's stat-logger shape).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class RequestRecord:
    """One finished request (completed, failed, cancelled or served from the cache)."""

    request_id: str
    model: str
    operation: str = "chat"
    status: str = "ok"  # ok | error | cancelled
    error_kind: str = ""  # the JarvisError subclass name, e.g. QueueFull
    latency_ms: float = 0.0  # submission to last token
    queue_ms: float = 0.0
    model_load_ms: float = 0.0
    prefill_ms: float = 0.0
    ttft_ms: float = 0.0
    decode_tokens_per_s: float = 0.0
    inter_token_ms: tuple[float, ...] = ()  # gaps between streamed tokens, for the ITL histogram
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hit: bool = False
    warm_start: bool = True
    coalesced: bool = False
    finish_reason: str = ""
    timestamp: float = field(default_factory=time.time)
    prompt: str | None = None  # only when telemetry.log_prompts is on
    reply: str | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("inter_token_ms")
        return d


@dataclass(frozen=True)
class StepRecord:
    """One engine step (one llama_decode over every active slot)."""

    model: str
    active_slots: int
    queue_depth: int
    batch_tokens: int
    decode_tokens: int
    prefill_tokens: int
    step_ms: float
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True)
class QueueRecord:
    """A queue event: a rejection (queue full) or a timeout."""

    model: str
    event: str  # "rejected" | "timeout"
    queue_depth: int
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ModelRecord:
    """A model loaded or unloaded."""

    model: str
    event: str  # "loaded" | "unloaded" | "load_failed" | "crashed" (its worker died; reason says why)
    load_ms: float = 0.0
    memory_bytes: int = 0
    gpu_layers: int = 0
    reason: str = ""
    timestamp: float = field(default_factory=time.time)


Record = RequestRecord | StepRecord | QueueRecord | ModelRecord
