"""The batching engine: one loaded model = one worker thread owning one llama context."""

from jarvis.engine import backend
from jarvis.engine.engine import Engine, EngineConfig

__all__ = ["Engine", "EngineConfig", "backend"]
