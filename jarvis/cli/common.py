"""What several commands share: the settings of a run (with `--remote`), and the usage exit code."""

from __future__ import annotations

from jarvis.config import load_settings

EXIT_USAGE = 2


def settings_for(args):
    """The settings file (`--config`), plus any `--remote NAME=URL` given before or after the command."""
    from jarvis.remote.settings import with_remotes

    return with_remotes(load_settings(args.config),
                        (getattr(args, "remote_global", None) or []) + (getattr(args, "remote", None) or []))


def add_remote_option(parser) -> None:
    parser.add_argument("--remote", action="append", metavar="NAME=URL",
                        help="use a remote OpenAI-compatible server's models as NAME/<model id> "
                             "(repeatable; like a [remotes.NAME] table with base_url = URL)")
