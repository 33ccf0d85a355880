"""What tools cost in the prompt: the tokens each tool's schema adds, in a given model's tokens.

A tool's cost is what the prompt loses by listing it: the tokens of the tools' system section
with every enabled tool, less the tokens of the same section without that tool. The total is the
whole section's tokens (what a prompt with tools carries that one without does not).
"""

from __future__ import annotations

import functools
import json
import os
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


def cached_schema_tokens(tools: list[ToolInfo], model_path) -> tuple[dict[str, int], int]:
    """gguf_schema_tokens, remembered per model file (path, size, mtime) and tool list: the tool
    loop asks for every turn, and the list rarely changes. Blocking: call it on a worker thread."""
    st = os.stat(model_path)
    described = json.dumps([[t.name, t.description, t.input_schema] for t in tools], sort_keys=True)
    per_tool, total = _remembered(str(model_path), st.st_size, st.st_mtime_ns, described)
    return dict(per_tool), total


@functools.lru_cache(maxsize=16)
def _remembered(path: str, size: int, mtime_ns: int, described: str) -> tuple[tuple[tuple[str, int], ...], int]:
    tools = [ToolInfo(name, description, schema) for name, description, schema in json.loads(described)]
    per_tool, total = gguf_schema_tokens(tools, path)
    return tuple(per_tool.items()), total
