"""What tools cost in the prompt: the tokens each tool's schema adds, in a given model's tokens.

A tool's cost is what the prompt loses by listing it: the tokens of the tools' system section
with every enabled tool, less the tokens of the same section without that tool. The total is the
whole section's tokens (what a prompt with tools carries that one without does not).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Callable

from jarvis.tools.plan import FunctionSpec, ToolPlan
from jarvis.tools.source import ToolInfo


def schema_tokens(tools: list[ToolInfo], count: Callable[[str], int]) -> tuple[dict[str, int], int]:
    """({tool name: tokens its schema adds}, tokens of the whole tools section)."""
    specs = [FunctionSpec(name=t.name, description=t.description or None, parameters=t.input_schema) for t in tools]
    if not specs:
        return {}, 0

    def section(chosen: list[FunctionSpec]) -> int:
        return count(ToolPlan(tuple(chosen), "auto", False).system_section()) if chosen else 0

    total = section(specs)
    return {s.name: total - section([o for o in specs if o is not s]) for s in specs}, total


def gguf_schema_tokens(tools: list[ToolInfo], model_path) -> tuple[dict[str, int], int]:
    """schema_tokens in a GGUF model's own tokens (the file is mapped, no context is made). Blocking:
    call it on a worker thread."""
    from pathlib import Path

    from jarvis.engine.handles import LlamaModel

    model = LlamaModel(Path(model_path), gpu_layers=0)
    try:
        return schema_tokens(tools, lambda text: len(model.tokenize(text, add_special=False)))
    finally:
        model.close()


class SchemaTokenMemo:
    """schema_tokens per model file and tool list, remembered: the tool loop wants them for every
    turn and the list rarely changes. `get` is a dict lookup (loop-safe); `count` maps the model and
    tokenizes (blocking: a worker thread), once per model file (its catalog identity: path, size,
    mtime) and tool list."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._known: OrderedDict[tuple, tuple[dict[str, int], int]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(tools: list[ToolInfo], identity: tuple) -> tuple:
        return (*identity, json.dumps([[t.name, t.description, t.input_schema] for t in tools], sort_keys=True))

    def get(self, key: tuple) -> tuple[dict[str, int], int] | None:
        with self._lock:
            found = self._known.get(key)
            if found is not None:
                self._known.move_to_end(key)
            return found

    def count(self, key: tuple, tools: list[ToolInfo], model_path) -> tuple[dict[str, int], int]:
        figures = gguf_schema_tokens(tools, model_path)
        with self._lock:
            self._known[key] = figures
            while len(self._known) > self.capacity:
                self._known.popitem(last=False)
        return figures


SCHEMA_TOKENS = SchemaTokenMemo()  # one per process: the desktop's conversations share it
