"""A remote server's own Prometheus metrics, read from its /metrics every second.

The text is fetched with httpx (the openai client's HTTP stack; async, on the loop) and parsed with
prometheus_client's parser in a thread (a vLLM page is tens of KB). vLLM's and llama-server's
names are mapped to one shape (running, waiting, KV-cache use, TTFT, token counters); an
unknown metric set gives None for what it lacks, and the monitor charts only what is there. A
server that has no /metrics (404, or not Prometheus text) is asked again only after a health
interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict, dataclass

from jarvis.remote.client import root_url

log = logging.getLogger("jarvis.remote.metrics")
SCRAPE_INTERVAL_S = 1.0

# Our name -> the names servers use (sample names, after prometheus_client's parser).
GAUGES = {
    "running": ("vllm:num_requests_running", "llamacpp:requests_processing", "jarvis_active_slots"),
    "waiting": ("vllm:num_requests_waiting", "llamacpp:requests_deferred", "jarvis_queue_size"),
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio"),
}
COUNTERS = {
    "prompt_tokens_total": ("vllm:prompt_tokens_total", "llamacpp:prompt_tokens_total",
                            "jarvis_prompt_tokens_total"),
    "generation_tokens_total": ("vllm:generation_tokens_total", "llamacpp:tokens_predicted_total",
                                "jarvis_generation_tokens_total"),
}
TTFT = ("vllm:time_to_first_token_seconds", "jarvis_time_to_first_token_seconds")  # histograms: _sum / _count


@dataclass(frozen=True)
class ServerMetrics:
    """One reading of a server's /metrics; None = the server does not report it."""

    kind: str  # vllm | llama.cpp | jarvis | unknown
    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None  # 0..1
    mean_ttft_s: float | None = None  # over the server's life: its histogram's sum / count
    prompt_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    read_at: float = 0.0  # time.time()

    def as_dict(self) -> dict:
        return asdict(self)


def parse(text: str) -> ServerMetrics:
    """Prometheus text -> ServerMetrics (blocking: run it in a thread)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name] = samples.get(s.name, 0.0) + s.value  # summed over label sets (models, engines)

    def first(names):
        for n in names:
            if n in samples:
                return samples[n]
        return None

    values = {k: first(v) for k, v in {**GAUGES, **COUNTERS}.items()}
    ttft = None
    for name in TTFT:
        count = samples.get(f"{name}_count")
        if count:
            ttft = samples.get(f"{name}_sum", 0.0) / count
            break
    names = " ".join(samples)
    kind = "vllm" if "vllm:" in names else "llama.cpp" if "llamacpp:" in names else \
        "jarvis" if "jarvis_" in names else "unknown"
    return ServerMetrics(kind=kind, mean_ttft_s=ttft, read_at=time.time(), **values)


async def scrape(backend, replica) -> ServerMetrics | None:
    import httpx2 as httpx

    from jarvis.remote.client import api_key

    if replica.http is None:
        replica.http = httpx.AsyncClient(timeout=min(5.0, backend.settings.timeout_s),
                                         limits=httpx.Limits(max_connections=1))
    try:
        response = await replica.http.get(root_url(replica.url) + "/metrics", headers={
            "Authorization": f"Bearer {api_key(backend.settings.api_key_env)}"})
    except Exception as e:  # down: the health probe says so; nothing to chart
        log.debug("remote %s: /metrics of %s: %s", backend.name, replica.url, e)
        return None
    if response.status_code != 200 or "text/plain" not in response.headers.get("content-type", "text/plain"):
        replica.metrics_state = "none"
        return None
    try:
        metrics = await asyncio.to_thread(parse, response.text)
    except ValueError:
        replica.metrics_state = "none"
        return None
    replica.metrics_state = "yes"
    return metrics


async def scrape_forever(backend) -> None:
    """Every second, each replica that is up and serves /metrics; one without is asked again
    after a health interval."""
    retry_at: dict[int, float] = {}
    while True:
        now = time.monotonic()
        for i, replica in enumerate(backend.replicas):
            if not replica.healthy or retry_at.get(i, 0.0) > now:
                continue
            with contextlib.suppress(Exception):
                metrics = await scrape(backend, replica)
                if metrics is not None:
                    replica.metrics = metrics
                elif replica.metrics_state == "none":
                    replica.metrics = None
                    retry_at[i] = now + backend.settings.health_interval_s
        await asyncio.sleep(SCRAPE_INTERVAL_S)
