"""The batching engine: one loaded model = one worker thread owning one llama context."""

from jarvis.engine.config import EngineConfig

__all__ = ["Engine", "EngineConfig", "backend"]


def __getattr__(name: str):
    # The engine itself is imported on first use, not with the package: `jarvis serve` opens its
    # default model (opening.py) before the rest of the engine's imports are done.
    if name == "Engine":
        from jarvis.engine.engine import Engine

        return Engine
    raise AttributeError(f"module 'jarvis.engine' has no attribute {name!r}")
