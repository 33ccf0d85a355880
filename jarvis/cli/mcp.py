"""`jarvis mcp`: the MCP servers whose tools the assistant may call.

  jarvis mcp list                       each server's state and tools, and what they cost in the prompt
  jarvis mcp add NAME -- COMMAND ARGS   add a stdio server to your settings file (or --url URL)
  jarvis mcp import FILE                add the servers of a Claude Desktop / LM Studio / Cursor mcp.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from jarvis.cli.common import EXIT_USAGE, settings_for
from jarvis.cli.table import table


def add_parser(sub) -> None:
    m = sub.add_parser("mcp", help="MCP tool servers: list, add, import")
    m.set_defaults(func=run_list, tokens=True)
    msub = m.add_subparsers(dest="mcp_command")
    ls = msub.add_parser("list", help="each server's state and tools (starts the enabled servers)")
    ls.add_argument("--no-tokens", dest="tokens", action="store_false",
                    help="skip counting the tools' schema tokens in the default model")
    ls.set_defaults(func=run_list)
    add = msub.add_parser("add", parents=[_add_options()],
                          help="add a server to your settings file: NAME -- COMMAND ARGS... or NAME --url URL")
    add.add_argument("name")
    # Everything after NAME: options, then -- and the command (argparse's own -- handling stops at
    # subcommands, so run_add splits it).
    add.add_argument("command", nargs=argparse.REMAINDER, help="[options] -- COMMAND ARGS...")
    add.set_defaults(func=run_add)
    imp = msub.add_parser("import", help="add the servers of an mcp.json (Claude Desktop, LM Studio, Cursor)")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=run_import)


def _add_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", help="a streamable-HTTP server instead of a command")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable for the server (repeatable); ${VAR} takes VAR from yours")
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="an HTTP header (repeatable)")
    p.add_argument("--approval", choices=["ask", "always", "never"])
    return p


def _target(args) -> Path:
    """The file `add` and `import` write: --config / JARVIS_CONFIG, else your own settings.toml."""
    import os

    from jarvis.config import user_settings_file

    named = args.config or os.environ.get("JARVIS_CONFIG")
    return Path(named) if named else user_settings_file()


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"jarvis mcp add: {what} {item!r}: write KEY=VALUE")
        out[key] = value
    return out


def _write(args, tables: dict) -> int:
    from jarvis.mcp.imports import add_servers

    target = _target(args)
    created = not target.exists()
    if created:  # a --config file that does not exist yet: the settings load it, so start it empty
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
    try:
        names = add_servers(target, tables, settings_for(args).mcp.servers, lambda: settings_for(args))
    except BaseException:
        if created and not target.read_text().strip():
            target.unlink()
        raise
    for name in names:
        print(f"Added MCP server {name} to {target}. Its tools are asked before each call (approval = "
              f"\"{tables[name].get('approval', 'ask')}\"); `jarvis mcp list` starts it and shows them.")
    return 0


def run_add(args) -> int:
    from jarvis.mcp.settings import validate_server

    rest = list(args.command)
    if rest[:1] and rest[0].startswith("-"):  # options after NAME, then -- and the command
        cut = rest.index("--") if "--" in rest else len(rest)
        head, command = rest[:cut], rest[cut + 1:]
    else:  # argparse took the -- itself: the rest is the command, its own -- included
        head, command = [], rest
    more = _add_options().parse_args(head)  # options written after NAME
    args.url = args.url or more.url
    args.env, args.header = args.env + more.env, args.header + more.header
    args.approval = args.approval or more.approval
    if bool(command) == bool(args.url):
        print("jarvis mcp add: give the server's command after --, e.g. `jarvis mcp add time -- uvx "
              "mcp-server-time`, or its --url", file=sys.stderr)
        return EXIT_USAGE
    table: dict = {"command": command[0], "args": command[1:]} if command else {"url": args.url}
    if args.env:
        table["env"] = _pairs(args.env, "--env")
    if args.header:
        table["headers"] = _pairs(args.header, "--header")
    if args.approval:
        table["approval"] = args.approval
    validate_server(args.name, table, "jarvis mcp add")
    return _write(args, {args.name: table})


def run_import(args) -> int:
    from jarvis.mcp.imports import read_mcp_json

    tables = read_mcp_json(args.file)
    if not tables:
        print(f"{args.file} lists no servers.")
        return 0
    return _write(args, tables)


def run_list(args) -> int:
    settings = settings_for(args)
    if not settings.mcp.servers:
        print("No MCP servers are configured. Add one with `jarvis mcp add NAME -- COMMAND ARGS...` or "
              "`jarvis mcp import mcp.json`.")
        return 0
    return asyncio.run(_list(settings, args.tokens))


async def _list(settings, tokens: bool) -> int:
    from jarvis.mcp.hub import McpHub

    hub = McpHub(settings.mcp)
    try:
        enabled = await hub.list_tools()
        statuses = hub.statuses()
    finally:
        await hub.close()
    print(table([[s.name, s.transport, s.state, str(len(s.tools)), s.where] for s in statuses],
                ["server", "transport", "state", "tools", "command / url"]))
    for s in statuses:
        if s.last_error:
            print(f"{s.name}: {s.last_error}")
    costs, total, model = ({}, 0, "")
    if tokens and enabled:
        costs, total, model = await asyncio.to_thread(_costs, settings, enabled)
    names = hub.model_names()
    rows = []
    for s in statuses:
        for tool in s.tools:
            name = names.get((s.name, tool.name), "")
            cost = str(costs[name]) if name in costs else "-"
            rows.append([s.name, tool.name, "on" if tool.enabled else "off", tool.approval, cost])
    if rows:
        print()
        print(table(rows, ["server", "tool", "enabled", "approval", "schema tokens"]))
    if model:
        print(f"\nThe enabled tools take {total} tokens of every prompt with tools in {model}.")
    return 0


def _costs(settings, tools):
    """Schema tokens in the default model, when it is a local GGUF (its vocabulary only is read)."""
    from jarvis.catalog import Catalog
    from jarvis.tools.cost import gguf_schema_tokens

    catalog = Catalog.from_settings(settings)
    try:
        snapshot = catalog.rescan()
        info = snapshot.get(snapshot.default_name(settings.general.default_model))
    finally:
        catalog.close()
    path = getattr(info, "path", None)
    if path is None:
        return {}, 0, ""
    costs, total = gguf_schema_tokens(tools, path)
    return costs, total, info.name
