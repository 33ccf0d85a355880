"""What the stats routes read: a StatsSource. The app knows this protocol, not the Assistant.

Every method is synchronous and cheap (no sampling, no device calls): the routes call them on the
asyncio loop. HubStatsSource reads TelemetryHub's last snapshot; the hub samples on its own thread.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable, Protocol

from jarvis.telemetry.responsiveness import Watch
from jarvis.telemetry.series import TelemetryHub

# Series of request times (keys p50_ms, ...) and the one rate (keys p50_tokens_per_s, ...).
REQUEST_SERIES = {"latency": "ms", "ttft": "ms", "queue": "ms", "prefill": "ms", "model_load": "ms",
                  "decode_tokens_per_s": "tokens_per_s"}


class StatsSource(Protocol):
    def performance_stats(self) -> dict[str, Any]: ...
    def system_metrics(self) -> dict[str, Any]: ...
    def models_stats(self) -> dict[str, Any]: ...
    def history(self, seconds: float | None = None) -> list[dict[str, Any]]: ...
    def recent_requests(self, limit: int) -> dict[str, Any]: ...


class HubStatsSource:
    """StatsSource over a TelemetryHub. `models` and `cache` are optional callables returning
    dicts (e.g. the model manager's and the response cache's own stats), merged into the answers."""

    def __init__(self, hub: TelemetryHub, models: Callable[[], dict[str, Any]] | None = None,
                 cache: Callable[[], dict[str, Any]] | None = None) -> None:
        self.hub = hub
        self._models = models
        self._cache = cache
        self.watch = Watch()  # every read says someone watches (runtime.py: the loop's heartbeat)

    def performance_stats(self) -> dict[str, Any]:
        self.watch.seen()
        perf = self.hub.perf
        counters = perf.counters()
        hits, misses = counters.get("cache.hits", 0), counters.get("cache.misses", 0)
        latest = self.hub.latest()
        return {
            "window_s": perf.window_s,
            "requests": {name: perf.stats(f"request.{name}", unit) for name, unit in REQUEST_SERIES.items()},
            "throughput": {
                "tokens_per_s": latest.tokens_per_s if latest else 0.0,
                "requests_per_s": latest.requests_per_s if latest else 0.0,
            },
            "queue": perf.queue_stats(),
            # Hits and misses are counted once, from the request records (as /metrics counts them);
            # the cache itself adds what it holds (size, evictions, ...).
            "cache": {**(self._cache() if self._cache else {}), "hits": hits, "misses": misses,
                      "hit_rate": hits / (hits + misses) if hits + misses else None},
            "counters": counters,
            # Per MCP server: calls, errors, refused, P50/P95 call latency, schema tokens in the last prompt with tools.
            "tools": perf.tool_servers(),
            # Heartbeat stalls per thread ("ui" only while the desktop runs); see telemetry/responsiveness.py.
            "responsiveness": self.hub.responsiveness.summary(),
        }

    def cache_stats(self) -> dict[str, Any]:
        """What the response cache holds, per level (memory, disk, semantic); cheap, never reads the file."""
        return self._cache() if self._cache else {}

    def system_metrics(self) -> dict[str, Any]:
        self.watch.seen()
        snapshot = self.hub.latest_system()
        if snapshot is None:
            return {"timestamp": None, "gpu_available": False, "gpus": [],
                    "note": "No sample yet: the sampler ticks once a second."}
        return asdict(snapshot)

    def models_stats(self) -> dict[str, Any]:
        self.watch.seen()
        perf = self.hub.perf
        counters = perf.counters()
        return {
            "loaded": perf.loaded_models(),
            "loads": counters.get("models.loaded", 0),
            "unloads": counters.get("models.unloaded", 0),
            "load_failures": counters.get("models.load_failed", 0),
            "crashes": counters.get("models.crashed", 0),  # engine workers that died (per model: crashed_models)
            "warm_starts": counters.get("starts.warm", 0),
            "cold_starts": counters.get("starts.cold", 0),
            "load_ms": perf.stats("model.load"),
            **(self._models() if self._models else {}),
        }

    def history(self, seconds: float | None = None) -> list[dict[str, Any]]:
        self.watch.seen()
        return self.hub.history(seconds)

    def recent_requests(self, limit: int) -> dict[str, Any]:
        self.watch.seen()
        recent = self.hub.recent
        return {"requests": recent.rows(limit), "capacity": recent.capacity, "log_prompts": recent.log_prompts}
