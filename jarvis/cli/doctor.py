"""`jarvis doctor`: versions, CPU features, GPU support, models, remotes."""

from __future__ import annotations

from jarvis.cli.common import add_remote_option, settings_for


def add_parser(sub) -> None:
    d = sub.add_parser("doctor", help="versions, CPU features, GPU support, models, remotes")
    add_remote_option(d)
    d.set_defaults(func=run)


def run(args) -> int:
    from jarvis.doctor import report

    print(report(settings_for(args)))
    return 0
