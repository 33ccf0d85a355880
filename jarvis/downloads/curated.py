"""The curated list (package data, curated.json) and whether each model fits this computer."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class CuratedModel:
    repo: str
    file: str
    kind: str                # "instruct" (chat) or "embedding"
    approx_size_mb: int
    size_bytes: int | None   # None: taken from the hub at download time
    sha256: str | None       # None: the hub's LFS SHA-256 is used (and always checked)
    licence: str
    context_length: int
    memory_gb: float         # estimated memory needed loaded, 4096-token context

    @property
    def name(self) -> str:
        return self.file.removesuffix(".gguf")


def curated_models() -> list[CuratedModel]:
    data = json.loads((resources.files("jarvis.downloads") / "curated.json").read_text(encoding="utf-8"))
    return [CuratedModel(**entry) for entry in data["models"]]


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
