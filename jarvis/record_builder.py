"""The one birthplace of a RequestRecord.

Backends report neutral Timings (jarvis.request.Timings); the Assistant measures what the caller
saw (submission to the first text, to the end) and calls `build_record` once per request, whatever
answered it: a backend, a cache level, a shared generation, or nothing (a failure). Every consumer
(the reply's last chunk, the HTTP `jarvis` figures, the stats line, PerfMonitor, /metrics, the
JSONL log, the System Monitor) reads that one record.
"""

from __future__ import annotations

import time

from jarvis.request import Timings
from jarvis.telemetry.records import NO_TOOLS, RequestRecord, ToolFigures

NO_TIMINGS = Timings(finish_reason="")


def build_record(*, request_id: str, model: str, operation: str, source: str, started: float,
                 served_by: str = "local", first_text_at: float = 0.0, timings: Timings | None = None,
                 cache: str = "off", coalesced: bool = False, status: str = "ok", error_kind: str = "",
                 prompt: str | None = None, reply: str | None = None, cache_similarity: float = 0.0,
                 cache_match: str = "", tools: ToolFigures = NO_TOOLS) -> RequestRecord:
    """`started` and `first_text_at` are perf_counter instants taken where the request came in and
    where its first text went out; `timings` None = nothing was generated for it (a failure before
    any backend answered). A cache level's replay passes timings without instants: it generated
    nothing, so it reports no queue, prefill or decode time, only its own time to the first text.
    `tools`: what the tool loop says of the request (its turn's rounds so far, the calls it carries)."""
    t = timings or NO_TIMINGS
    now = time.perf_counter()
    return RequestRecord(
        request_id=request_id, model=model, operation=operation, source=source, backend=served_by,
        status=status, error_kind=error_kind, finish_reason=t.finish_reason if status == "ok" else "",
        stop_sequence=t.stop_sequence if status == "ok" else "",
        total_ms=(now - started) * 1000,
        queue_ms=t.queue_ms, queue_position=t.queue_position, model_load_ms=t.load_ms,
        prefill_ms=t.prefill_ms, ttft_ms=(first_text_at - started) * 1000 if first_text_at else 0.0,
        decode_tokens_per_s=t.decode_tokens_per_s, inter_token_ms=t.inter_token_ms,
        prompt_tokens=t.prompt_tokens, cached_prompt_tokens=t.cached_prompt_tokens,
        completion_tokens=t.completion_tokens, reasoning_tokens=t.reasoning_tokens, dropped_turns=t.dropped_turns, constrained=t.constrained,
        cache=cache, cache_similarity=cache_similarity, cache_match=cache_match, warm_start=t.warm_start,
        coalesced=coalesced, timestamp=time.time(),
        prompt=prompt, reply=reply, server_timings=t.server_timings,
        tool_rounds=tools.rounds, tool_ms=tools.ms, tool_calls=tools.calls, tool_schema_tokens=tools.schema_tokens)
