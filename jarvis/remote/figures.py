"""A one-shot check of every configured remote (`jarvis models`, `jarvis doctor`), and its words.
(The server's own figures on a stats line: jarvis.stats_line.server_figures.)"""

from __future__ import annotations

import asyncio


def check_remotes(settings) -> list[dict]:
    """Probe every configured remote once (blocking: for the CLI) -> each backend's status()."""
    if not settings.remotes:
        return []

    async def run() -> list[dict]:
        from jarvis.catalog import Catalog
        from jarvis.remote.source import sources_from_settings
        from jarvis.telemetry import RecordBus

        sources = sources_from_settings(settings, Catalog(include_bundled=False), RecordBus())
        try:
            for source in sources:
                await source.ensure_probed()
            return [entry for source in sources for entry in source.status()]
        finally:
            for source in sources:
                await source.close()

    return asyncio.run(run())


def status_lines(statuses: list[dict]) -> list[str]:
    """One line per remote (and per replica when there are several), for `jarvis models` and doctor."""
    lines = []
    for st in statuses:
        reps = st["replicas"]
        rtts = [r["rtt_ms"] for r in reps if r["rtt_ms"] is not None and r["reachable"]]
        if st["reachable"]:
            head = f"{st['name']}: reachable, {st['base_url']}, round trip {min(rtts):.0f} ms" if rtts else \
                f"{st['name']}: reachable, {st['base_url']}"
            n = len(st["models"])
            head += f", {n} model{'s' if n != 1 else ''}" if n else ", no models listed"
            refused = [r["key_refused"] for r in reps if r.get("key_refused")]
            if refused:
                head += f" (it answered {refused[0]}: set remotes.{st['name']}.api_key_env to a variable holding the key)"
        else:
            head = f"{st['name']}: UNREACHABLE, {st['base_url']}: {st['last_error']}"
        lines.append(head)
        if len(reps) > 1:
            for r in reps:
                lines.append(f"  replica {r['url']}: {r['state']}" + (f" ({r['last_error']})" if r["last_error"] else "")
                             + (f", round trip {r['rtt_ms']:.0f} ms" if r["rtt_ms"] is not None else ""))
    return lines
