"""GET /metrics: Prometheus exposition, one logger among others on the RecordBus (vLLM's shape).

Every metric lives in this object's own CollectorRegistry, never the process-global one, so two
apps (tests, or a second server) never collide. Names are `jarvis_*` with base units (seconds,
bytes) and `_total` on counters, as Prometheus conventions ask.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from jarvis.http.stats_source import StatsSource
from jarvis.telemetry.fold import RAN, facts
from jarvis.telemetry.records import ModelRecord, QueueRecord, RequestRecord, StallRecord, StepRecord

# Local models: a cached reply takes milliseconds, a long answer minutes.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 20)
STALL_BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.033, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
TOOL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1)


class CacheLevelsCollector:
    """Per cache level (memory, disk, semantic): hits, misses, evictions, entries and bytes, as the
    cache itself counts them (read from the StatsSource at each scrape)."""

    COUNTERS = (("hits", "Lookups this cache level answered."), ("misses", "Lookups this cache level could not answer."),
                ("evictions", "Entries this cache level dropped (size cap, LRU or TTL)."))
    GAUGES = (("entries", "Entries this cache level holds."), ("bytes", "Bytes this cache level holds."))

    def __init__(self) -> None:
        self.levels: dict[str, dict] = {}

    def collect(self):
        for key, help_text in self.COUNTERS:
            family = CounterMetricFamily(f"jarvis_cache_level_{key}", help_text, labels=["level"])
            for level, figures in self.levels.items():
                family.add_metric([level], float(figures.get(key) or 0))
            yield family
        for key, help_text in self.GAUGES:
            family = GaugeMetricFamily(f"jarvis_cache_level_{key}", help_text, labels=["level"])
            for level, figures in self.levels.items():
                family.add_metric([level], float(figures.get(key) or 0))
            yield family


class PrometheusMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram("jarvis_request_duration_seconds", "Submission to last token.",
                                          ["model", "backend"], buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram("jarvis_time_to_first_token_seconds", "Submission to first token.",
                              ["model", "backend"], buckets=TTFT_BUCKETS, registry=r)
        self.itl = Histogram("jarvis_inter_token_latency_seconds", "Gap between streamed tokens.",
                             ["model", "backend"], buckets=ITL_BUCKETS, registry=r)
        self.requests = Counter("jarvis_requests", "Finished requests.", ["model", "status", "backend"], registry=r)
        self.prompt_tokens = Counter("jarvis_prompt_tokens", "Prompt tokens processed.", ["model", "backend"], registry=r)
        self.generation_tokens = Counter("jarvis_generation_tokens", "Tokens generated.", ["model", "backend"], registry=r)
        self.cache_hits = Counter("jarvis_cache_hits", "Requests answered from the response cache.", registry=r)
        self.cache_misses = Counter("jarvis_cache_misses", "Requests the cache could not answer.", registry=r)
        self.cache_answers = Counter("jarvis_cache_answers", "Requests answered from the cache, by the level that "
                                     "answered: hit (memory), disk, semantic.", ["level"], registry=r)
        self.cache_levels = CacheLevelsCollector()
        r.register(self.cache_levels)
        self.queue_rejections = Counter("jarvis_queue_rejections", "Requests refused: queue full.",
                                        ["model"], registry=r)
        self.queue_timeouts = Counter("jarvis_queue_timeouts", "Requests that timed out.", ["model"], registry=r)
        self.queue_size = Gauge("jarvis_queue_size", "Requests waiting for a slot.", ["model"], registry=r)
        self.active_slots = Gauge("jarvis_active_slots", "Sequences decoding now.", ["model"], registry=r)
        self.engine_crashes = Counter("jarvis_engine_crashes", "Engine workers that died (the model was unloaded).",
                                      ["model"], registry=r)
        self.loaded_models = Gauge("jarvis_loaded_models", "Models loaded now.", registry=r)
        self.stall = Histogram("jarvis_heartbeat_stall_seconds",
                               "How late a heartbeat ran: thread=ui is the desktop's Qt thread, loop the asyncio loop.",
                               ["thread"], buckets=STALL_BUCKETS, registry=r)
        self.tool_calls = Counter("jarvis_tool_calls", "Tool calls by server and outcome: done, error (the tool "
                                  "failed, timed out or its server crashed), denied, invalid (arguments did not fit).",
                                  ["server", "status"], registry=r)
        self.tool_duration = Histogram("jarvis_tool_call_duration_seconds", "A tool call's own time, request to answer.",
                                       ["server"], buckets=TOOL_BUCKETS, registry=r)
        self.tool_schema_tokens = Gauge("jarvis_tool_schema_tokens", "Tokens a server's enabled tools' schemas "
                                        "added to the last prompt with tools.", ["server"], registry=r)
        self._tool_servers: set[str] = set()
        self.gpu_memory_used = Gauge("jarvis_gpu_memory_used_bytes", "GPU memory in use (whole device).",
                                     ["gpu"], registry=r)

    def observe(self, record: object) -> None:
        """Subscribe this to a RecordBus. Runs on the emitting thread; prometheus_client is thread-safe."""
        if isinstance(record, RequestRecord):
            self._observe_request(record)
        elif isinstance(record, StepRecord):
            self.queue_size.labels(record.model).set(record.queue_depth)
            self.active_slots.labels(record.model).set(record.active_slots)
        elif isinstance(record, QueueRecord):
            if record.event == "rejected":
                self.queue_rejections.labels(record.model).inc()
            elif record.event == "timeout":
                self.queue_timeouts.labels(record.model).inc()
        elif isinstance(record, StallRecord):
            stall = self.stall.labels(record.source)
            for ms in record.stalls_ms:
                stall.observe(ms / 1000.0)
        elif isinstance(record, ModelRecord) and record.event == "crashed":
            self.engine_crashes.labels(record.model).inc()

    def _observe_request(self, r: RequestRecord) -> None:
        f = facts(r)  # what the record adds, decided once (jarvis.telemetry.fold); the same as PerfMonitor's
        # backend: "local" (this computer's llama.cpp) or the remote's NAME
        self.requests.labels(f.model, f.status, f.backend).inc()
        self.request_duration.labels(f.model, f.backend).observe(f.latency_ms / 1000.0)
        if f.ttft_ms is not None:
            self.ttft.labels(f.model, f.backend).observe(f.ttft_ms / 1000.0)
        itl = self.itl.labels(f.model, f.backend)
        for gap_ms in f.inter_token_ms:  # the gaps the backend measured, observed once the request is done
            itl.observe(gap_ms / 1000.0)
        if f.prompt_tokens or f.completion_tokens:
            self.prompt_tokens.labels(f.model, f.backend).inc(f.prompt_tokens)
            self.generation_tokens.labels(f.model, f.backend).inc(f.completion_tokens)
        if f.cache is not None:
            (self.cache_hits if f.cache == "hit" else self.cache_misses).inc()
        if f.cache_level is not None:  # which level answered: hit (memory), disk, semantic
            self.cache_answers.labels(f.cache_level).inc()
        for call in f.tool_calls:  # the calls whose results this request carried, each counted once
            self.tool_calls.labels(call.server, call.status).inc()
            if call.status in RAN:
                self.tool_duration.labels(call.server).observe(call.ms / 1000.0)
        if f.tool_schema_tokens is not None:  # the latest prompt with tools: a server not in it adds 0
            self._tool_servers.update(f.tool_schema_tokens)
            for server in self._tool_servers:
                self.tool_schema_tokens.labels(server).set(f.tool_schema_tokens.get(server, 0))

    def update_at_scrape(self, source: StatsSource) -> None:
        """Gauges that describe the present rather than events: read from the StatsSource."""
        loaded = source.models_stats().get("loaded", [])
        self.loaded_models.set(len(loaded) if isinstance(loaded, (list, tuple, set, dict)) else int(loaded))
        cache_stats = getattr(source, "cache_stats", None)
        self.cache_levels.levels = ((cache_stats() if cache_stats else {}).get("levels") or {}).copy()
        for gpu in source.system_metrics().get("gpus", ()):
            if gpu.get("memory_used_bytes") is not None:
                self.gpu_memory_used.labels(str(gpu["index"])).set(gpu["memory_used_bytes"])

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_handler(metrics: PrometheusMetrics, source: StatsSource):
    async def handle(request: web.Request) -> web.Response:
        metrics.update_at_scrape(source)
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle
