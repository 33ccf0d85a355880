"""`jarvis pull` and `jarvis rm`: their parsers and actions live beside the downloads they drive
(jarvis/downloads/commands.py), which never import the CLI."""

from __future__ import annotations


def add_parser(sub) -> None:
    from jarvis.downloads.commands import add_parsers

    add_parsers(sub)
