"""The `jarvis` command's registry: a command is one module of jarvis/cli/ plus one line in
COMMANDS, and a module written but not listed is caught here."""

from __future__ import annotations

import importlib
import pkgutil

import jarvis.cli
from jarvis.cli import build_parser
from jarvis.cli.commands import COMMANDS


def test_every_command_module_is_listed():
    modules = [importlib.import_module(f"jarvis.cli.{m.name}") for m in pkgutil.iter_modules(jarvis.cli.__path__)]
    with_parser = {m.__name__ for m in modules if hasattr(m, "add_parser")}
    assert with_parser == {m.__name__ for m in COMMANDS}


NAMES = ["gui", "models", "pull", "rm", "ask", "chat", "mcp", "doctor", "serve", "stats", "bench", "cache",
         "setup-cuda"]
REQUIRED = {"pull": ["OWNER/NAME"], "rm": ["NAME"], "cache": ["stats"]}  # their positional arguments


def test_the_commands_in_their_order_and_each_with_an_action():
    assert "{" + ",".join(NAMES) + "}" in build_parser().format_help()
    for name in NAMES:
        args = build_parser().parse_args([name, *REQUIRED.get(name, [])])
        assert args.command == name and hasattr(args, "func")  # gui's is None: ui.launcher hands the desktop in
