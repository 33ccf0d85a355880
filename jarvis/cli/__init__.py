"""The `jarvis` command line: one module per command (see `jarvis.cli.commands`), a shared table
formatter (`jarvis.cli.table`). The top layer of the core: no other `jarvis` module imports it."""

from jarvis.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
