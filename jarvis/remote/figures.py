"""Words for what remotes report: the server's own timings beside JARVIS's, and a one-shot check
of every configured remote (`jarvis models`, `jarvis doctor`)."""

from __future__ import annotations

import asyncio

# The server's own figures worth a place on a stats line, by the names servers use.
_SHOWN = (
    ("predicted_per_second", "{:.1f} tokens/s"),  # llama-server timings
    ("prompt_ms", "prompt {:.0f} ms"),
    ("decode_tokens_per_s", "{:.1f} tokens/s"),  # another JARVIS
    ("ttft_ms", "TTFT {:.0f} ms"),
    ("queue_ms", "queue {:.0f} ms"),
)


def server_figures(timings: dict) -> str:
    """'server: 61.2 tokens/s · prompt 12 ms', or '' when the server reported nothing we know."""
    parts = [fmt.format(timings[key]) for key, fmt in _SHOWN if isinstance(timings.get(key), (int, float))]
    return ("server: " + " · ".join(parts)) if parts else ""


def via(record) -> str:
    """' · via NAME (server: ...)' for a remote request's stats line; '' for a local one."""
    if record.backend == "local":
        return ""
    own = server_figures(record.server_timings)
    return f" · via {record.backend}" + (f" ({own})" if own else "")


def check_remotes(settings) -> list[dict]:
    """Probe every configured remote once (blocking: for the CLI) -> each backend's status()."""
    if not settings.remotes:
        return []

    async def run() -> list[dict]:
        from jarvis.catalog import Catalog
        from jarvis.remote.registry import Remotes
        from jarvis.telemetry import RecordBus

        remotes = Remotes.from_settings(settings, Catalog(include_bundled=False), RecordBus())
        try:
            for backend in remotes.backends.values():
                await remotes.ensure_probed(backend)
            return [
                {**b.status(), "models": [m.name for m in remotes.model_infos() if m.remote == name]}
                for name, b in remotes.backends.items()]
        finally:
            await remotes.close()

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
