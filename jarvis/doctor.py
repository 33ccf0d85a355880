"""`jarvis doctor`: what this machine and this build can do, in one report."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from jarvis.catalog import Catalog
from jarvis.config import user_settings_file
from jarvis.desktop_check import check_desktop


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _threads_line(configured: int) -> str:
    """How many compute threads llama.cpp gets, and why that many."""
    if configured:
        return f"{configured} for llama.cpp (engine.n_threads)"
    from jarvis.engine.config import auto_threads
    from jarvis.engine.cores import usable_cpus

    usable = usable_cpus()
    of = f" of the {len(usable)} logical CPUs this process may use" if usable else ""
    return (f"{auto_threads()} for llama.cpp (engine.n_threads = 0: one per physical core{of};"
            " SMT siblings and efficiency cores left out, as llama.cpp counts them)")


def report(settings) -> str:
    from jarvis.engine import backend
    from jarvis.telemetry.gpu import GpuProbe

    lines = ["JARVIS doctor", ""]
    lines.append(f"Python           {sys.version.split()[0]} on {platform.platform()}")
    for dist in ("llama-cpp-python", "PySide6-Essentials", "qasync", "pyqtgraph", "aiohttp", "nvidia-ml-py"):
        lines.append(f"{dist + ' ':<17}{_version(dist)}")
    lines.append("")
    backend.ensure_backend()
    offload = backend.supports_gpu_offload()
    lines.append(f"GPU offload      {'yes: this llama.cpp build can offload layers' if offload else 'no: CPU-only build'}")
    wants_gpu = settings.gpu.use_gpu and settings.gpu.gpu_layers != 0
    if wants_gpu and not offload:
        lines.append("                 gpu.gpu_layers asks for GPU layers, so JARVIS runs on the CPU and says so;"
                     " `jarvis setup-cuda --check` tells what a CUDA build needs.")
    probe = GpuProbe()
    gpus = probe.snapshot()
    if gpus:
        for g in gpus:
            lines.append(f"NVIDIA GPU {g.index}     {g.name}, {g.memory_used_bytes / 2**30:.1f} / "
                         f"{g.memory_total_bytes / 2**30:.1f} GiB used")
    else:
        why = "NVML is available but lists no device" if probe.available else "no NVIDIA driver (libnvidia-ml) found"
        lines.append(f"NVIDIA GPU       none: {why}")
    probe.close()
    lines.append(f"CPU threads      {_threads_line(settings.engine.n_threads)}")
    lines.append(f"CPU features     {backend.system_info()}")
    desktop = check_desktop()
    if desktop.ok:
        lines.append(f"Desktop          ok: Qt's {desktop.platform} platform plugin can load")
    else:
        lines.append("Desktop          cannot open a window: " + desktop.message().replace("\n", "\n                 "))
    lines.append("")
    models = Catalog.from_settings(settings).rescan().models
    lines.append(f"Models           {sum(m.ok for m in models)} usable, {sum(not m.ok for m in models)} unreadable")
    for m in models:
        state = "ok" if m.ok else f"UNREADABLE: {m.error}"
        lines.append(f"  {m.name:<40} {m.source:<10} {state}")
    if settings.remotes:
        from jarvis.remote.figures import check_remotes, status_lines

        lines.append("Remotes          " + "\n                 ".join(status_lines(check_remotes(settings))))
    lines.append("")
    lines.append(f"Your models      {settings.user_models_path} (drop *.gguf files here)")
    lines.append(f"Settings file    {user_settings_file()} ({'found' if user_settings_file().is_file() else 'none yet'})")
    lines.append(f"Data directory   {settings.data_path}")
    lines.append(f"HTTP endpoint    http://{settings.server.host}:{settings.server.port}")
    return "\n".join(lines)
