"""`jarvis serve`: the local HTTP endpoint without the window."""

from __future__ import annotations

import sys

from jarvis.cli.common import add_remote_option, settings_for


def add_parser(sub) -> None:
    s = sub.add_parser("serve", help="run the local HTTP endpoint without the window")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--mcp", action="store_true",
                   help="offer the MCP tools whose approval is \"always\" to API requests that send "
                        "\"jarvis_tools\": true (run here, by the same tool loop as the desktop's)")
    add_remote_option(s)
    s.set_defaults(func=run)


def run(args) -> int:
    from jarvis import crash_log
    from jarvis.http.serve import serve

    settings = settings_for(args)
    crash_log.enable(settings.app_log_path, settings.general.log_level)  # a native crash leaves its stacks
    if args.mcp and not settings.mcp.servers:
        print("jarvis serve --mcp: no MCP server is configured. Add one with `jarvis mcp add NAME -- COMMAND` "
              "and set approval = \"always\" for the tools the API may run.", file=sys.stderr)
        return 2
    return serve(settings, host=args.host, port=args.port, mcp=args.mcp)
