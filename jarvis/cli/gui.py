"""`jarvis gui` (and `jarvis` alone): the desktop app. Its entry point is handed to `main` by
ui.launcher, because the core never imports ui; no `func` here tells `main` to call it."""

from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("gui", help="open the desktop app (the default)").set_defaults(func=None)
