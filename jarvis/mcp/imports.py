"""MCP servers from another client's `mcp.json`, and written into the user's settings file.

Claude Desktop, LM Studio and Cursor keep servers as `{"mcpServers": {NAME: {command, args, env}}}`
(Cursor and LM Studio also `{url, headers}` for remote ones); VS Code as `{"servers": {...}}`
with a `type`. Each becomes one `[mcp.servers.NAME]` table, appended to the settings file as text,
so the user's comments and layout stay as they were. "Always allow" writes its
`[mcp.servers.NAME.tools.TOOL] approval = "always"` the same way (`set_tool_approval`). Every write
replaces the file at once (a temporary file renamed over it), is checked by loading the settings
again, and is undone when they no longer load.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from jarvis.errors import ConfigError
from jarvis.mcp.settings import McpServerSettings, validate_server

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TABLE_START = re.compile(r"^[ \t]*\[", re.M)
_APPROVAL_LINE = re.compile(r"^[ \t]*approval[ \t]*=.*$", re.M)


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
    _write_checked(settings_file, before, text, load_check)
    return list(tables)


def set_tool_approval(settings_file: Path, server: str, tool: str, approval: str, load_check) -> None:
    """`approval = "..."` in the file's [mcp.servers.SERVER.tools.TOOL] table: the line replaced when
    the table has one, added under its header when it has not, the table appended when the file has
    none. The rest of the file (other settings, comments) stays as it was."""
    before = settings_file.read_text(encoding="utf-8") if settings_file.exists() else None
    text = before or ""
    line = f"approval = {json.dumps(approval)}"
    header = re.compile(rf"^[ \t]*\[[ \t]*mcp[ \t]*\.[ \t]*servers[ \t]*\.[ \t]*{_key_pattern(server)}[ \t]*\."
                        rf"[ \t]*tools[ \t]*\.[ \t]*{_key_pattern(tool)}[ \t]*\][ \t]*(#.*)?$", re.M)
    found = header.search(text)
    if found:
        following = _TABLE_START.search(text, found.end())
        end = following.start() if following else len(text)
        body = text[found.end():end]
        body = _APPROVAL_LINE.sub(lambda _: line, body, count=1) if _APPROVAL_LINE.search(body) else "\n" + line + body
        text = text[:found.end()] + body + text[end:]
    else:
        text = text.rstrip("\n")
        text += ("\n\n" if text else "") + f"[mcp.servers.{_key(server)}.tools.{_key(tool)}]\n{line}\n"
    _write_checked(settings_file, before, text, load_check)


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _key_pattern(name: str) -> str:
    """A TOML key as it may be written: bare, "quoted" or 'literal'."""
    return f"(?:{re.escape(name)}|{re.escape(json.dumps(name))}|'{re.escape(name)}')"


def _write_checked(settings_file: Path, before: str | None, text: str, load_check) -> None:
    """Replace the file's text at once; if the settings no longer load, put it back and raise."""
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    _replace(settings_file, text)
    try:
        load_check()
    except ConfigError:
        if before is None:
            settings_file.unlink()
        else:
            _replace(settings_file, before)
        raise


def _replace(path: Path, text: str) -> None:
    """Write beside the file, then rename over it: a crash mid-write never leaves half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
