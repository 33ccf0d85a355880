"""The tools of a Responses or Messages request, as the chat path's ToolSpecs.

Tools JARVIS cannot run itself (web search, file search, code interpreter, computer use, MCP,
Anthropic's server tools): a clear 400 that names them, or, with `server.unsupported_tools =
"drop"`, left out of the request and reported (agent clients such as Codex always send some)."""

from __future__ import annotations

import logging
import re
from typing import Any, Callable

from pydantic import ValidationError

from jarvis.errors import InvalidRequest
from jarvis.tools.plan import FunctionSpec, ToolSpec

log = logging.getLogger("jarvis.http")
DROPPED_HEADER = "X-JARVIS-Dropped-Tools"


def runnable_tools(tools: list[Any], is_function: Callable[[Any], bool], kind_of: Callable[[Any], str],
                   policy: str, field: str = "tools") -> tuple[list[tuple[int, Any]], list[str]]:
    """([(its index in the request, a tool JARVIS can offer the model)], the kinds dropped).
    `policy`: "reject" | "drop"."""
    kept: list[tuple[int, Any]] = []
    dropped: list[str] = []
    for i, tool in enumerate(tools):
        if is_function(tool):
            kept.append((i, tool))
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


def tool_spec(index: int, name: str | None, description: str | None, parameters: dict | None,
              strict: bool | None = None) -> ToolSpec:
    """One function tool as the chat path's ToolSpec; a bad name is a 400 naming the client's field."""
    if not name:
        raise InvalidRequest(f"tools[{index}].name is required for a function tool.", field=f"tools[{index}].name")
    try:
        return ToolSpec(function=FunctionSpec(name=name, description=description, parameters=parameters, strict=strict))
    except ValidationError:
        raise InvalidRequest(f"tools[{index}].name {name[:80]!r} must be 1-64 letters, digits, '_', '.' or '-'.",
                             field=f"tools[{index}].name") from None


def client_fields(error: InvalidRequest, indexes: list[int], schema_field: str) -> InvalidRequest:
    """An error the chat path raised about `tools[k].function.<x>`, renamed to the field the client
    sent: its own index (dropped tools shift them) and its own key (`input_schema`, `parameters`)."""
    match = re.match(r"tools\[(\d+)\]\.function\.(parameters|name)", error.field or "")
    if not match or int(match.group(1)) >= len(indexes):
        return error
    key = schema_field if match.group(2) == "parameters" else "name"
    ours, theirs = match.group(0), f"tools[{indexes[int(match.group(1))]}].{key}"
    return InvalidRequest(str(error).replace(ours, theirs), field=theirs + (error.field or "")[match.end():])
