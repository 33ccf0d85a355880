"""Plain, frozen records the core emits; loggers (PerfMonitor, JSONL log, /metrics, the UI) consume them.

Nothing that emits a record knows who listens (vLLM v1's stat-logger shape).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class ToolCallFigures:
    """One tool call the tool loop ran or refused, as telemetry counts it (per server)."""

    server: str  # where the tool lives: an MCP server's NAME
    tool: str  # the tool's own name on that server
    status: str  # done | error (the tool failed, timed out or its server crashed) | denied | invalid
    ms: float = 0.0  # the call's own time (request to answer); 0 for a call that never ran


@dataclass(frozen=True)
class ToolFigures:
    """What the tool loop tells telemetry about one request of a turn with tools (jarvis.tools.loop)."""

    rounds: int = 0  # tool rounds in this turn before this request (0 = the turn's first request)
    ms: float = 0.0  # those rounds' tool time, together
    calls: tuple[ToolCallFigures, ...] = ()  # the calls of the round just before: each counted once
    schema_tokens: dict = field(default_factory=dict, compare=False)  # {server: tokens its tools' schemas add}


NO_TOOLS = ToolFigures()


@dataclass(frozen=True)
class RequestRecord:
    """One finished request: completed, failed, cancelled or served from the cache.

    Built once, by jarvis.record_builder, from what the backend measured (its neutral Timings) and
    what the Assistant saw; every consumer (the reply's last chunk, the HTTP `jarvis` figures, the
    stats line, PerfMonitor, /metrics, the JSONL log, the System Monitor) reads this one record.
    Times are milliseconds; ttft_ms and total_ms run from the request's arrival at the Assistant.
    """

    request_id: str  # the ChatRequest's id ("req-N")
    model: str  # catalog name of the model that answered (or was asked for, when it failed first)
    operation: str = "chat"  # what was asked: chat, ask, openai.chat, openai.completion, ...
    source: str = ""  # which front end asked: chat (desktop), api (HTTP), cli; "" = not said
    backend: str = "local"  # what generated it: "local" = an in-process llama.cpp engine, else the remote's NAME
    status: str = "ok"  # ok | error | cancelled
    error_kind: str = ""  # the JarvisError subclass name when status is error, e.g. QueueFull
    finish_reason: str = ""  # stop (end of answer or a stop string) | length (max_tokens, context); "" = unfinished
    stop_sequence: str = ""  # the stop string that ended it, when one did (Anthropic's stop_sequence)
    total_ms: float = 0.0  # submission to the last token (or to the failure)
    queue_ms: float = 0.0  # waiting for a free slot in the engine
    queue_position: int = 0  # place in line at submission (1 = next); 0 = a slot was free for it
    model_load_ms: float = 0.0  # the model load this request waited for; 0 when it was loaded (warm)
    prefill_ms: float = 0.0  # admission to the first token: the prompt's prefill
    ttft_ms: float = 0.0  # arrival to the first text handed on, a model load included (a cache hit: its replay)
    decode_tokens_per_s: float = 0.0  # tokens after the first, per second of decoding
    inter_token_ms: tuple[float, ...] = field(default=(), repr=False)  # gaps between tokens (ITL histogram)
    prompt_tokens: int = 0  # the prompt as the model saw it (template applied, after truncation)
    cached_prompt_tokens: int = 0  # of those, reused from the slot's KV cache (not prefilled again)
    completion_tokens: int = 0  # tokens generated (an end-of-generation token not counted)
    reasoning_tokens: int = 0  # of those, the model's thinking (`<think>` block, or a remote's reasoning)
    dropped_turns: int = 0  # oldest conversation turns dropped to fit the context
    constrained: str = ""  # the grammar's label ("JSON", "tool call") when a grammar shaped the output
    cache: str = "off"  # which cache level answered: hit (memory) | disk | semantic; miss | off (not looked up)
    cache_similarity: float = 0.0  # cache "semantic": cosine similarity of the prompt to the one it matched
    cache_match: str = ""  # cache "semantic": the id of the earlier prompt whose answer was replayed
    warm_start: bool = True  # the model was already loaded when the request came
    coalesced: bool = False  # shared an identical request's generation instead of running its own
    timestamp: float = field(default_factory=time.time)  # wall clock when the record was made
    prompt: str | None = None  # the last user message or raw prompt; only when telemetry.log_prompts is on
    reply: str | None = None  # the reply's text; only when telemetry.log_prompts is on
    # A remote server's own figures for this request, when it reports them (llama-server's `timings`,
    # another JARVIS's `jarvis` figures): numbers by the server's own names. {} for local requests.
    server_timings: dict = field(default_factory=dict, compare=False)
    # A request of the tool loop: the tool rounds (and their tool time) before it in its turn, the
    # calls whose results it carries, and the tokens each server's tool schemas add to its prompt.
    tool_rounds: int = 0
    tool_ms: float = 0.0
    tool_calls: tuple[ToolCallFigures, ...] = ()
    tool_schema_tokens: dict = field(default_factory=dict, compare=False)  # {server: tokens}; {} = no tools

    @property
    def cache_hit(self) -> bool:
        return self.cache in ("hit", "disk", "semantic")  # any level: a replay generated nothing

    def as_dict(self, texts: bool = False) -> dict:
        """The one serialised form, by the record's own field names (an API answer's `jarvis`
        figures, a JSONL log line, a request-explorer row): floats to the microsecond, without the
        per-token gaps, with the prompt and reply only when `texts` (telemetry.log_prompts)."""
        # Field by field rather than asdict(), which deep-copied every per-token gap only to drop them.
        d = {name: getattr(self, name) for name in _SERIALISED}
        if not texts:
            d.pop("prompt")
            d.pop("reply")
        d["server_timings"] = copy.deepcopy(self.server_timings)
        d["tool_schema_tokens"] = dict(self.tool_schema_tokens)
        d["cache_hit"] = self.cache_hit
        d["tool_calls"] = [{**asdict(c), "ms": round(c.ms, 3)} for c in self.tool_calls]
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}

    @classmethod
    def from_figures(cls, figures: dict) -> "RequestRecord":
        """A record back from its serialised form (another JARVIS's `jarvis` figures); unknown keys are left out."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in figures.items() if k in known}
        if "tool_calls" in values:  # serialised as dicts; another JARVIS's calls are its own, not ours
            values["tool_calls"] = ()
        return cls(**values)

    def figures(self) -> dict:
        """What an API answer carries: the record without the per-token gaps and the texts."""
        return self.as_dict()


_SERIALISED = tuple(f.name for f in fields(RequestRecord) if f.name != "inter_token_ms")  # as_dict's keys, in order


@dataclass(frozen=True)
class StepRecord:
    """An engine's occupancy (`active_slots`, `queue_depth` after its last step) and the steps it
    ran since its previous StepRecord (`steps` llama_decodes; the token counts and `step_ms` are
    their sums). An engine sends one when its occupancy changes, and at least every few tenths of
    a second while it runs (jarvis/engine/step_tally.py), not one per step: six subscribers per
    step cost more of a token's time than the counting. A remote server sends one when its
    occupancy changes (requests upstream as `active_slots`, waiting as `queue_depth`, no steps)."""

    model: str
    active_slots: int
    queue_depth: int
    batch_tokens: int
    decode_tokens: int
    prefill_tokens: int
    step_ms: float
    timestamp: float = field(default_factory=time.time)
    draft_tokens: int = 0  # prompt-lookup guesses verified, besides decode_tokens (one per slot per step)
    steps: int = 0  # llama_decodes summed here (a remote's record has none)
    widest_decode: int = 0  # the most generating slots decoded together in one of these steps


@dataclass(frozen=True)
class QueueRecord:
    """A queue event: a rejection (queue full) or a timeout."""

    model: str
    event: str  # "rejected" | "timeout"
    queue_depth: int
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ModelRecord:
    """A model loaded or unloaded."""

    model: str
    event: str  # "loaded" | "unloaded" | "load_failed" | "crashed" (its worker died; reason says why)
    load_ms: float = 0.0
    memory_bytes: int = 0
    gpu_layers: int = 0
    reason: str = ""
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True)
class StallRecord:
    """Heartbeat lateness on one thread since the previous StallRecord of that source.

    A heartbeat asks to run every `interval_ms`; how much later than that it ran is the time the
    thread could not answer (a stall). "ui" is the Qt thread (the desktop feeds it in; the core
    never imports Qt), "loop" the asyncio loop. Emitted a few times a second, not per beat.
    """

    source: str  # "ui" | "loop"
    interval_ms: float
    stalls_ms: tuple[float, ...] = field(default=(), repr=False)  # one per heartbeat, >= 0
    timestamp: float = field(default_factory=time.time)


Record = RequestRecord | StepRecord | QueueRecord | ModelRecord | StallRecord
