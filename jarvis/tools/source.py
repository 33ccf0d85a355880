"""Where tools come from, as the tool loop sees them: a `ToolSource` lists `ToolInfo`s and runs
calls. MCP servers are one source (jarvis.mcp.McpHub); another source only has to answer these two."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Approval = Literal["ask", "always", "never"]


@dataclass(frozen=True)
class ToolInfo:
    """One tool the model may call: the name the model sees, what it does, its arguments' JSON
    schema, the user's approval policy, and where it comes from (for cards and prompts)."""

    name: str
    description: str
    input_schema: dict
    approval: Approval = "ask"
    origin: str = ""  # e.g. "MCP server time"
    server: str = ""  # the server that runs it (an MCP server's NAME): telemetry counts calls by it


@dataclass(frozen=True)
class ToolOutput:
    """A call's answer as text. `sent_at` / `answered_at` (perf_counter) bracket the source's own
    work, so the loop can tell its overhead from the tool's time."""

    text: str
    is_error: bool = False
    sent_at: float = 0.0
    answered_at: float = 0.0


class ToolSource(Protocol):
    async def list_tools(self) -> list[ToolInfo]:
        """The enabled tools, now (a source may start servers to answer)."""
        ...

    async def call(self, tool: ToolInfo, arguments: dict) -> ToolOutput:
        """Run one call. A failure the model should hear about is a ToolOutput with is_error; an
        exception is reported to the model as the call's error too."""
        ...

    async def allow_always(self, tool: ToolInfo) -> str:
        """The user answered "Always allow": remember it beyond this conversation (a settings file).
        Returns "" or why it could not be kept."""
        ...


class AlwaysAllowed:
    """A ToolSource with only the tools the user allows without a question (approval "always"):
    what a caller nobody can ask (an API request, `jarvis serve --mcp`) may use. Tools set to "ask"
    are not offered at all, and "never" ones never."""

    def __init__(self, source: ToolSource) -> None:
        self.source = source

    async def list_tools(self) -> list[ToolInfo]:
        return [t for t in await self.source.list_tools() if t.approval == "always"]

    async def call(self, tool: ToolInfo, arguments: dict) -> ToolOutput:
        return await self.source.call(tool, arguments)

    async def allow_always(self, tool: ToolInfo) -> str:
        return ""  # nobody is asked here, so nobody answers "always"
