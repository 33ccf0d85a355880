"""The curated list (package data, curated.json), its pins, and whether each model fits this computer.

The memory a model needs is computed, not written down: its weights (the file), an f16 KV cache
for a 4096-token context from its layer and KV-head dimensions, and llama.cpp's compute buffer,
sized by the larger of a 512-token batch's logits (vocabulary x 512 x 4 bytes) and its attention
scores (context x 512 x heads x 4 bytes). Measured on the bundled SmolLM2-135M at n_ctx 4096:
KV cache 90.0 MiB (the formula's figure exactly), compute buffer 99.4 MiB (the formula: 96 MiB
of logits, plus the 32 MB allowance for the rest)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

FIT_CONTEXT = 4096      # the context the fits figure assumes
_BATCH = 512            # llama.cpp's default micro-batch: its compute buffer holds that many tokens' logits
_BUFFERS_BASE = 32e6    # the rest of llama.cpp's buffers (graph, output), small for these models


@dataclass(frozen=True)
class CuratedModel:
    repo: str
    file: str
    kind: str                # "instruct" (chat) or "embedding"
    approx_size_mb: int
    size_bytes: int | None   # the pin; None: taken from the hub at download time
    sha256: str | None       # the pin; None: not known (never guessed). The hub's LFS SHA-256 is always checked
    licence: str
    context_length: int
    heads: int               # attention (query) heads
    layers: int              # transformer blocks
    kv_heads: int            # key/value heads (fewer than the query heads with grouped-query attention)
    head_dim: int
    vocab: int
    memory_gb: float = 0.0   # computed by curated_models() from the above

    @property
    def name(self) -> str:
        return self.file.removesuffix(".gguf")

    @property
    def weights_bytes(self) -> int:
        return self.size_bytes or self.approx_size_mb * 1_000_000


def kv_cache_bytes(model: CuratedModel, context: int = FIT_CONTEXT) -> int:
    """K and V, f16 (2 bytes), for every layer, token and KV head."""
    return 2 * model.layers * context * model.kv_heads * model.head_dim * 2


def compute_buffer_bytes(model: CuratedModel, context: int = FIT_CONTEXT) -> int:
    """llama.cpp's compute buffer holds the largest live tensor of one batch: its logits or its
    attention scores (without flash attention), both f32."""
    return max(model.vocab * _BATCH * 4, context * _BATCH * model.heads * 4)


def memory_estimate_gb(model: CuratedModel) -> float:
    """Weights + a 4k f16 KV cache + compute buffers, rounded up to 0.1 GB."""
    need = model.weights_bytes + kv_cache_bytes(model) + compute_buffer_bytes(model) + _BUFFERS_BASE
    return math.ceil(need / 1e8) / 10


@lru_cache(maxsize=1)
def curated_models() -> tuple[CuratedModel, ...]:
    data = json.loads((resources.files("jarvis.downloads") / "curated.json").read_text(encoding="utf-8"))
    models = [CuratedModel(**entry) for entry in data["models"]]
    return tuple(CuratedModel(**{**entry, "memory_gb": memory_estimate_gb(m)})
                 for entry, m in zip(data["models"], models))


def pins_for(repo: str, path: str) -> tuple[int | None, str | None]:
    """(size, SHA-256) the curated list pins for this repo and file; (None, None) if it is not listed."""
    for m in curated_models():
        if m.repo == repo and m.file == path:
            return m.size_bytes, m.sha256
    return None, None


@dataclass(frozen=True)
class Machine:
    ram_bytes: int
    vram_bytes: int = 0   # the largest GPU's memory; 0 without a GPU

    @classmethod
    def this(cls) -> "Machine":
        from jarvis.telemetry.gpu import GpuProbe

        probe = GpuProbe()  # NVML: call this from a thread (the CLI), never on the event loop
        try:
            return cls.from_gpus(probe.snapshot())
        finally:
            probe.close()

    @classmethod
    def from_gpus(cls, gpus) -> "Machine":
        """From GPUs already read elsewhere (the telemetry sampler's last snapshot, off the loop)."""
        import psutil

        return cls(psutil.virtual_memory().total, max((d.memory_total_bytes or 0 for d in gpus), default=0))


def fit(model: CuratedModel, machine: Machine) -> tuple[bool, str]:
    """("fits", "fits in GPU memory", or "needs N GB more") against RAM, and VRAM where there is a GPU."""
    need = model.memory_gb * 1e9
    if machine.vram_bytes and need <= machine.vram_bytes:
        return True, "fits (GPU)"
    if need <= machine.ram_bytes:
        return True, "fits"
    short = math.ceil((need - max(machine.ram_bytes, machine.vram_bytes)) / 1e8) / 10
    return False, f"needs {short:g} GB more"
