"""Every configured MCP server, as one tool source for the tool loop (jarvis.tools.loop).

Servers start on first use (all enabled ones at once when the tools are first listed); one that
cannot start is left out of that answer's tools and its state says why. A tool's name as the model
sees it is its own, or SERVER_TOOL when two servers offer the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from jarvis.mcp.server import McpServer, McpServerError, McpTool, ServerStatus
from jarvis.mcp.settings import McpSettings
from jarvis.tools.source import ToolInfo, ToolOutput

log = logging.getLogger("jarvis.mcp")


class McpHub:
    def __init__(self, settings: McpSettings, environ: dict[str, str] | None = None, *,
                 settings_file: Path | None = None) -> None:
        """`settings_file`: where "Always allow" is written (Settings.settings_file); None = this session only."""
        self.settings = settings
        self.settings_file = settings_file
        self.servers = {name: McpServer(name, s, environ) for name, s in settings.servers.items()}
        self._by_name: dict[str, McpTool] = {}

    @property
    def configured(self) -> bool:
        return any(s.settings.enabled for s in self.servers.values())

    async def start(self) -> None:
        """Start every enabled server now (a failure is kept in its state, not raised). One that
        failed lately is left out until its back-off has passed, so it never delays an answer."""
        async def one(server: McpServer) -> None:
            with contextlib.suppress(McpServerError):
                await server.ensure()
        await asyncio.gather(*(one(s) for s in self.servers.values()
                               if s.settings.enabled and not s.backoff_left()))

    def model_names(self) -> dict[tuple[str, str], str]:
        """(server, tool) -> the name the model saw at the last list_tools."""
        return {(t.server, t.name): name for name, t in self._by_name.items()}

    def statuses(self) -> list[ServerStatus]:
        return [s.status() for s in self.servers.values()]

    # ---- ToolSource --------------------------------------------------------------------------
    async def list_tools(self) -> list[ToolInfo]:
        await self.start()
        tools = [t for s in self.servers.values() if s.state == "ready" for t in s.tools if t.enabled]
        self._by_name = model_names(tools)
        return [ToolInfo(name, t.description, t.input_schema, t.approval, f"MCP server {t.server}", t.server)  # type: ignore[arg-type]
                for name, t in self._by_name.items()]

    async def call(self, tool: ToolInfo, arguments: dict) -> ToolOutput:
        found = self._by_name.get(tool.name)
        if found is None:
            return ToolOutput(f"Error: no tool named {tool.name} is available now.", True)
        try:
            result = await self.servers[found.server].call(found.name, arguments)
        except McpServerError as e:
            return ToolOutput(f"Error: {e}", True)
        return ToolOutput(result.text, result.is_error, result.sent_at, result.answered_at)

    async def allow_always(self, tool: ToolInfo) -> str:
        """The user's "Always allow": the tool is not asked again, in this session and (with a
        settings file) in the next, as `[mcp.servers.NAME.tools.TOOL] approval = "always"`. Returns
        "" or why the file could not be written (the session still remembers)."""
        found = self._by_name.get(tool.name)
        if found is None:
            return ""
        self.servers[found.server].set_tool_approval(found.name, "always")
        if self.settings_file is None:
            return ""
        from jarvis.config import load_settings
        from jarvis.errors import ConfigError
        from jarvis.mcp.imports import set_tool_approval

        path = self.settings_file
        try:  # file work on a thread: never on the loop
            await asyncio.to_thread(set_tool_approval, path, found.server, found.name, "always",
                                    lambda: load_settings(path))
        except (ConfigError, OSError) as e:
            problem = (f"\"Always allow\" for {found.name} holds for this session only: {path} could not be "
                       f"written ({e}). Add approval = \"always\" under [mcp.servers.{found.server}.tools."
                       f"{found.name}] yourself.")
            log.warning("%s", problem)
            return problem
        log.info("%s: [mcp.servers.%s.tools.%s] approval = \"always\"", path, found.server, found.name)
        return ""

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.servers.values()), return_exceptions=True)


def model_names(tools: list[McpTool]) -> dict[str, McpTool]:
    """The name each tool has for the model: its own, or SERVER_TOOL where two servers share it
    (names kept to what a function name may be: letters, digits, _ . -, 64 at most)."""
    import re

    counts: dict[str, int] = {}
    for t in tools:
        counts[t.name] = counts.get(t.name, 0) + 1
    out: dict[str, McpTool] = {}
    for t in tools:
        name = t.name if counts[t.name] == 1 else f"{t.server}_{t.name}"
        out[re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]] = t
    return out
