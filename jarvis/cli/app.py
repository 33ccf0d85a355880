"""The `jarvis` command: gui (default), chat, ask, models, pull, rm, doctor, serve, stats, bench.

The commands themselves are modules of this package, listed in `jarvis.cli.commands.COMMANDS`."""

from __future__ import annotations

import argparse
import logging
import sys

from jarvis.cli.commands import COMMANDS
from jarvis.cli.common import EXIT_USAGE, settings_for
from jarvis.errors import ConfigError, InvalidRequest, JarvisError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jarvis", description="Local LLMs in-process, with live performance.")
    p.add_argument("--config", metavar="PATH", help="user settings file (also JARVIS_CONFIG)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what JARVIS and llama.cpp do")
    p.add_argument("--remote", action="append", dest="remote_global", metavar="NAME=URL",
                   help="use a remote OpenAI-compatible server's models as NAME/<model id> (repeatable)")
    sub = p.add_subparsers(dest="command")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None, gui=None) -> int:
    """`gui` is the desktop's entry point, handed in by ui.launcher: the core never imports ui."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        if gui is None:
            print("jarvis: the desktop app starts with the `jarvis` command (ui.launcher); "
                  "try `jarvis chat` for the terminal.", file=sys.stderr)
            return EXIT_USAGE
        func = lambda a: gui(settings_for(a))  # noqa: E731
    try:
        return func(args) or 0
    except ConfigError as e:
        print(f"jarvis: settings error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidRequest as e:  # empty prompt, context overflow, bad sampling values
        print(f"jarvis: {e}", file=sys.stderr)
        return EXIT_USAGE
    except JarvisError as e:
        print(f"jarvis: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
