"""The one line that says how an answer went: the desktop shows it under each answer, `jarvis chat`
and `jarvis ask --stats` print it. One formatter, so every front end reads the same record the
same way.

    smol · 48 tokens [(12 thinking)] · 81.3 tok/s · TTFT 112 ms · warm [· JSON] [· via gpu (server: ...)]
    with detail: ... · 31 prompt (24 reused) · stop [· 2 oldest turns dropped to fit]
    a prompt with tools that lost history: ... · 2 earlier turns left out to fit the tools (always said)
"""

from __future__ import annotations

from jarvis.telemetry.records import RequestRecord

# The server's own figures worth a place on the line, by the names servers use.
_SERVER_FIGURES = (
    ("predicted_per_second", "{:.1f} tokens/s"),  # llama-server timings
    ("prompt_ms", "prompt {:.0f} ms"),
    ("decode_tokens_per_s", "{:.1f} tokens/s"),  # another JARVIS
    ("ttft_ms", "TTFT {:.0f} ms"),
    ("queue_ms", "queue {:.0f} ms"),
)


def server_figures(timings: dict) -> str:
    """'server: 61.2 tokens/s · prompt 12 ms', or '' when the server reported nothing we know."""
    parts = [fmt.format(timings[key]) for key, fmt in _SERVER_FIGURES if isinstance(timings.get(key), (int, float))]
    return ("server: " + " · ".join(parts)) if parts else ""


def start_word(t: RequestRecord) -> str:
    """How the answer started: from which cache level, or a warm or cold model."""
    if t.cache == "semantic":
        return f"cached (similar prompt, {t.cache_similarity:.2f})"
    if t.cache_hit:
        return "cached (disk)" if t.cache == "disk" else "cached"
    return "warm" if t.warm_start else f"cold start (load {t.model_load_ms:.0f} ms)"


def stats_line(t: RequestRecord | None, model: str = "", status: str = "complete", detail: bool = False) -> str:
    """The answer's line. `status` "stopped": the user stopped it; `detail`: prompt tokens, the
    finish reason and dropped turns too (the terminal has room)."""
    if t is None:
        return f"{model} · stopped before the first token" if status == "stopped" else model
    tokens = f"{t.completion_tokens} tokens" + (f" ({t.reasoning_tokens} thinking)" if t.reasoning_tokens else "")
    parts = [model or t.model, tokens, f"{t.decode_tokens_per_s:.1f} tok/s",
             f"TTFT {t.ttft_ms:.0f} ms", start_word(t)]
    if detail:
        parts.insert(4, f"{t.prompt_tokens} prompt ({t.cached_prompt_tokens} reused)")
        parts.append(t.finish_reason or t.status)
    if t.dropped_turns and t.tool_schema_tokens:  # said always: the tools cost the user history
        parts.append(f"{t.dropped_turns} earlier turn{'s' if t.dropped_turns != 1 else ''} left out to fit the tools")
    elif detail and t.dropped_turns:
        parts.append(f"{t.dropped_turns} oldest turns dropped to fit")
    if t.constrained:  # the output was held to a grammar
        parts.append(t.constrained)
    if t.backend != "local":  # served elsewhere: where, and the server's own figures when it sent any
        own = server_figures(t.server_timings)
        parts.append(f"via {t.backend}" + (f" ({own})" if own else ""))
    if status == "stopped":
        parts.append("stopped")
    return " · ".join(parts)
