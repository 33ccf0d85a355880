"""Tools JARVIS cannot run itself (web search, file search, code interpreter, computer use, MCP,
Anthropic's server tools): a clear 400 that names them, or, with `server.unsupported_tools =
"drop"`, left out of the request and reported (agent clients such as Codex always send some)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from jarvis.errors import InvalidRequest

log = logging.getLogger("jarvis.http")
DROPPED_HEADER = "X-JARVIS-Dropped-Tools"


def runnable_tools(tools: list[Any], is_function: Callable[[Any], bool], kind_of: Callable[[Any], str],
                   policy: str, field: str = "tools") -> tuple[list[Any], list[str]]:
    """(the tools JARVIS can offer the model, the kinds dropped). `policy`: "reject" | "drop"."""
    kept: list[Any] = []
    dropped: list[str] = []
    for i, tool in enumerate(tools):
        if is_function(tool):
            kept.append(tool)
            continue
        kind = kind_of(tool)
        if policy != "drop":
            raise InvalidRequest(
                f"{field}[{i}]: tools of type {kind!r} run on the provider's servers, which JARVIS does not have; "
                "only function tools are supported. Remove it, or set server.unsupported_tools = \"drop\" to have "
                "JARVIS leave such tools out.", field=f"{field}[{i}].type")
        dropped.append(kind)
    if dropped:
        log.info("Left out tools JARVIS cannot run: %s (server.unsupported_tools = \"drop\").", ", ".join(dropped))
    return kept, dropped
