"""`jarvis stats`: the performance stats of a running instance, as JSON."""

from __future__ import annotations

import json

from jarvis.cli.common import settings_for


def add_parser(sub) -> None:
    st = sub.add_parser("stats", help="print the stats of a running instance")
    st.add_argument("--server", metavar="URL")
    st.set_defaults(func=run)


def run(args) -> int:
    from jarvis.http.client import fetch_json

    print(json.dumps(fetch_json(settings_for(args), "/api/performance/stats", args.server), indent=2))
    return 0
