"""`jarvis serve`: the local HTTP endpoint without the window."""

from __future__ import annotations

from jarvis.cli.common import add_remote_option, settings_for


def add_parser(sub) -> None:
    s = sub.add_parser("serve", help="run the local HTTP endpoint without the window")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    add_remote_option(s)
    s.set_defaults(func=run)


def run(args) -> int:
    from jarvis import crash_log
    from jarvis.http.serve import serve

    settings = settings_for(args)
    crash_log.enable(settings.app_log_path, settings.general.log_level)  # a native crash leaves its stacks
    return serve(settings, host=args.host, port=args.port)
