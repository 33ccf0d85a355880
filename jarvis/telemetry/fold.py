"""The one fold of a finished request into figures.

PerfMonitor (the live window), the per-minute rollups and Prometheus all count requests; the
rules of what a record adds are decided here, once: a replayed (cached) reply generated nothing
(no tokens, no queue, no warm or cold start), a request that never looked the cache up is neither
a hit nor a miss, and only a request that answered has a time to first token. Tool calls ride on
the request that carries their results (jarvis.tools.loop): each is counted once, by its server; a
call that reached its server counts as a call (a failed one as an error too), a denied call or one
whose arguments did not fit the schema as refused, and only calls that ran have a latency.
"""

from __future__ import annotations

from dataclasses import dataclass

from jarvis.telemetry.records import RequestRecord, ToolCallFigures

RAN = ("done", "error")  # statuses of a call that reached its server


@dataclass(frozen=True)
class RequestFacts:
    """What one finished request adds to every figure."""

    model: str
    backend: str
    status: str  # ok | error | cancelled
    error_kind: str
    latency_ms: float
    ttft_ms: float | None  # only for a request that answered
    queue_ms: float | None  # None for a cache hit: it never queued
    prefill_ms: float | None
    load_ms: float | None
    decode_tokens_per_s: float | None
    inter_token_ms: tuple[float, ...]
    cache: str | None  # "hit" (any level) | "miss" | None (not looked up)
    cache_level: str | None  # the level that answered a hit: "hit" (memory), "disk", "semantic"
    warm_start: bool | None  # None for a cache hit: nothing started
    prompt_tokens: int  # 0 for a cache hit: nothing was processed
    completion_tokens: int  # 0 for a cache hit: nothing was generated
    tool_calls: tuple[ToolCallFigures, ...]  # the calls whose results the request carried
    tool_schema_tokens: dict[str, int] | None  # per server, in this prompt; None = the prompt had no tools

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def facts(r: RequestRecord) -> RequestFacts:
    ok = r.status == "ok"
    generated = not r.cache_hit
    return RequestFacts(
        model=r.model, backend=r.backend, status=r.status, error_kind=r.error_kind, latency_ms=r.total_ms,
        ttft_ms=r.ttft_ms if ok and r.ttft_ms > 0 else None,
        queue_ms=r.queue_ms if generated else None,
        prefill_ms=r.prefill_ms if r.prefill_ms > 0 else None,
        load_ms=r.model_load_ms if r.model_load_ms > 0 else None,
        decode_tokens_per_s=r.decode_tokens_per_s if ok and r.decode_tokens_per_s > 0 else None,
        inter_token_ms=r.inter_token_ms,
        cache=None if r.cache == "off" else ("hit" if r.cache_hit else "miss"),
        cache_level=r.cache if r.cache_hit else None,
        warm_start=r.warm_start if generated else None,
        prompt_tokens=r.prompt_tokens if generated else 0,
        completion_tokens=r.completion_tokens if generated else 0,
        tool_calls=r.tool_calls,
        tool_schema_tokens=dict(r.tool_schema_tokens) if r.tool_schema_tokens else None,
    )
