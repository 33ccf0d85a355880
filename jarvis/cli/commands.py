"""Every `jarvis` command, in the order `jarvis --help` lists them.

A command is one module here with `add_parser(sub)`: it adds its subparser and sets `func` (args ->
exit code). Adding a command is that module plus one line in COMMANDS.
"""

from __future__ import annotations

from jarvis.cli import ask, bench, cache, chat, doctor, downloads, gui, mcp, models, serve, setup_cuda, stats

COMMANDS = [
    gui,
    models,
    downloads,  # pull, rm
    ask,
    chat,
    mcp,  # list, add, import
    doctor,
    serve,
    stats,
    bench,
    cache,
    setup_cuda,
]
