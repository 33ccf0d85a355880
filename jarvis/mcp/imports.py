"""MCP servers from another client's `mcp.json`, and written into the user's settings file.

Claude Desktop, LM Studio and Cursor keep servers as `{"mcpServers": {NAME: {command, args, env}}}`
(Cursor and LM Studio also `{url, headers}` for remote ones); VS Code as `{"servers": {...}}`
with a `type`. Each becomes one `[mcp.servers.NAME]` table, appended to the settings file as text,
so the user's comments and layout stay as they were.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jarvis.errors import ConfigError
from jarvis.mcp.settings import McpServerSettings, validate_server

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


def read_mcp_json(path: Path) -> dict[str, dict[str, Any]]:
    """{NAME: [mcp.servers.NAME] table} from an mcp.json, or ConfigError saying what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} cannot be read: {e}.") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.") from None
    servers = data.get("mcpServers", data.get("servers")) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f"{path} has no \"mcpServers\" object (the Claude Desktop / LM Studio / Cursor format) "
                          "and no \"servers\" object (VS Code's).")
    tables: dict[str, dict[str, Any]] = {}
    for raw_name, entry in servers.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: server {raw_name!r} is not an object.")
        name = _SAFE_NAME.sub("-", str(raw_name))[:32].strip("-") or "server"
        table: dict[str, Any] = {}
        for key in ("command", "args", "env", "cwd", "url", "headers"):
            if entry.get(key) not in (None, "", [], {}):
                table[key] = entry[key]
        if "url" not in table and entry.get("serverUrl"):  # Windsurf's spelling
            table["url"] = entry["serverUrl"]
        if entry.get("disabled") is True:
            table["enabled"] = False
        tables[name] = table
        validate_server(name, table, f"{path}, server {raw_name!r}")
    return tables


def toml_table(name: str, table: dict[str, Any]) -> str:
    """One [mcp.servers.NAME] table as TOML text (JSON strings are TOML basic strings)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(str(k))} = {value(x)}" for k, x in v.items()) + " }"
        raise ConfigError(f"mcp.servers.{name}: {v!r} cannot be written to TOML.")
    lines = [f"[mcp.servers.{name}]"] + [f"{k} = {value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def add_servers(settings_file: Path, tables: dict[str, dict[str, Any]], existing: dict[str, McpServerSettings],
                load_check) -> list[str]:
    """Append the tables to the settings file (created if needed); NAMEs already configured are
    refused. `load_check()` re-reads the settings; if the file no longer loads, it is put back as
    it was and the error raised. Returns the names written."""
    taken = [n for n in tables if n in existing]
    if taken:
        raise ConfigError(f"MCP server {', '.join(taken)} is already configured: remove [mcp.servers.{taken[0]}] "
                          f"from your settings, or pick another name.")
    before = settings_file.read_text(encoding="utf-8") if settings_file.exists() else None
    text = (before or "").rstrip("\n")
    text += ("\n\n" if text else "") + "\n".join(toml_table(n, t) for n, t in tables.items())
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(text, encoding="utf-8")
    try:
        load_check()
    except ConfigError:
        if before is None:
            settings_file.unlink()
        else:
            settings_file.write_text(before, encoding="utf-8")
        raise
    return list(tables)
