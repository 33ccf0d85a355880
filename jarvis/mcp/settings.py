"""`[mcp]` and its `[mcp.servers.NAME]` tables: the MCP servers whose tools the assistant may call.

The shape is the one other clients use (`command` / `args` / `env` / `cwd` for a server JARVIS
starts and talks to over stdio; `url` / `headers` for a streamable-HTTP server), so a server's own
docs can be pasted. Values of `env` and `headers` may name environment variables as `${NAME}`;
they are expanded only when the server is started, and neither they nor their expansion is ever
logged or shown.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jarvis.errors import ConfigError
from jarvis.named_tables import validate_named_table

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
URL_PATTERN = re.compile(r"https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(/[^\s]*)?")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Approval = Literal["ask", "always", "never"]


class McpToolSettings(BaseModel):
    """`[mcp.servers.NAME.tools.TOOL]`: one tool's switch and approval, over the server's."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    approval: Approval | None = None  # None = the server's


class McpServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = ""  # a stdio server: the program JARVIS starts
    args: list[str] = []
    env: dict[str, str] = {}  # added to a small safe environment (PATH, HOME, ...), ${VAR} expanded
    cwd: str = ""
    url: str = ""  # a streamable-HTTP server, e.g. "http://127.0.0.1:8000/mcp"
    headers: dict[str, str] = {}  # ${VAR} expanded, e.g. Authorization = "Bearer ${GITHUB_TOKEN}"
    enabled: bool = True
    timeout_s: float = Field(30, gt=0, le=3600)  # start-up and each call; past it the server is restarted
    approval: Approval = "ask"
    tools: dict[str, McpToolSettings] = {}

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not URL_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not an http(s) URL, e.g. \"http://127.0.0.1:8000/mcp\"")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> "McpServerSettings":
        if bool(self.command) == bool(self.url):
            raise ValueError("give either command (a server JARVIS starts, over stdio) or url (a streamable-HTTP "
                             "server), not both and not neither")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def tool_enabled(self, tool: str) -> bool:
        own = self.tools.get(tool)
        return own.enabled if own else True

    def tool_approval(self, tool: str) -> Approval:
        own = self.tools.get(tool)
        return own.approval if own and own.approval else self.approval

    def where(self) -> str:
        """What the server is, for lists and errors: the command line or the URL (never env or headers)."""
        return " ".join([self.command, *self.args]) if self.command else self.url


class McpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_rounds: int = Field(4, ge=1, le=64)  # tool rounds in one answer before the model must answer
    result_max_kb: int = Field(16, ge=1, le=4096)  # a tool result beyond this is cut, and says so
    servers: dict[str, McpServerSettings] = {}


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"MCP server name {name!r} is invalid: use letters, digits, '_' or '-' (at most 32), "
                          "e.g. [mcp.servers.time].")
    return name


def validate_server(name: str, values: dict, where: str) -> McpServerSettings:
    """One [mcp.servers.NAME] table -> McpServerSettings, or one ConfigError naming where, key and value."""
    check_name(name)

    def describe(key: str, err: dict) -> str:
        why = err["msg"].removeprefix("Value error, ")
        if not key:  # the whole table (command vs url)
            return f"{where}: mcp.servers.{name}: {why}."
        shown = "(hidden)" if key.startswith(("env.", "headers.")) else repr(err.get("input"))
        return f"{where}: mcp.servers.{name}.{key} = {shown} is invalid: {why}."
    return validate_named_table(McpServerSettings, "mcp.servers", name, values, where, describe)


def expand(values: dict[str, str], what: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """`${VAR}` references in env / header values -> their values. A missing variable is an error
    that names it (never the value around it)."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for key, value in values.items():
        def sub(match: re.Match) -> str:
            var = match.group(1)
            if var not in environ:
                raise ConfigError(f"{what}.{key} uses ${{{var}}}, which is not set: export {var} before starting "
                                  "JARVIS, or write the value in the settings file.")
            return environ[var]
        out[key] = ENV_REFERENCE.sub(sub, value)
    return out
