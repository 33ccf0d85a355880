"""`jarvis models [--loaded] [--available]`: the catalog, what a running instance has loaded, or the
curated list with what fits this computer."""

from __future__ import annotations

import sys

from jarvis.cli.common import add_remote_option, settings_for
from jarvis.cli.table import mb, table


def add_parser(sub) -> None:
    m = sub.add_parser("models", help="list the model catalog")
    m.add_argument("--loaded", action="store_true", help="what a running JARVIS has loaded")
    m.add_argument("--server", metavar="URL", help="the running instance (default: from settings)")
    m.add_argument("--available", action="store_true", help="the curated list, and what fits this computer")
    add_remote_option(m)
    m.set_defaults(func=run)


def run(args) -> int:
    if args.available:
        from jarvis.downloads.commands import print_available

        return print_available(table)
    settings = settings_for(args)
    if args.loaded:
        return _loaded(settings, args.server)
    return _catalog(settings)


def _loaded(settings, server: str | None) -> int:
    from jarvis.http.client import fetch_json

    data = fetch_json(settings, "/api/models/stats", server)
    rows = [[m["name"], f"{m['load_ms']:.0f} ms", mb(m["memory_bytes"]), str(m["gpu_layers"]),
             "busy" if m["busy"] else "idle"] for m in data.get("loaded_models", [])]
    print(table(rows, ["NAME", "LOAD", "MEMORY", "GPU LAYERS", "STATE"]) if rows else "No model is loaded.")
    return 0


def _catalog(settings) -> int:
    from jarvis.catalog import Catalog
    from jarvis.remote.figures import check_remotes

    models = Catalog.from_settings(settings).rescan().models
    remote_status = check_remotes(settings)
    rows = []
    for m in models:
        if m.ok:
            rows.append([m.name, m.architecture, m.size_label or f"{m.parameters / 1e6:.0f}M", m.quantization,
                         str(m.context_length), "yes" if m.has_chat_template else "no", mb(m.size_bytes), m.source])
        else:
            rows.append([m.name, "UNREADABLE", "", "", "", "", mb(m.size_bytes), f"{m.source}: {m.error}"])
    for st in remote_status:
        if st["reachable"]:
            rtt = [r["rtt_ms"] for r in st["replicas"] if r["rtt_ms"] is not None and r["reachable"]]
            rows.extend([name, "remote", "", "", "", "", "-", f"remote {st['name']}, "
                         + (f"round trip {min(rtt):.0f} ms" if rtt else "reachable")] for name in st["models"])
        else:
            rows.append([f"{st['name']}/*", "UNREACHABLE", "", "", "", "", "-",
                         f"remote {st['name']} ({st['base_url']}): {st['last_error']}"])
    print(table(rows, ["NAME", "ARCH", "PARAMS", "QUANT", "CONTEXT", "TEMPLATE", "SIZE", "SOURCE"]))
    if remote_status:
        from jarvis.remote.figures import status_lines

        print("\nRemotes\n" + "\n".join("  " + line for line in status_lines(remote_status)))
    if not any(m.ok for m in models) and not any(st["models"] for st in remote_status):
        print("\nNo usable model. Put a .gguf file in models/ or install the bundled one (make run does).",
              file=sys.stderr)
        return 1
    return 0
