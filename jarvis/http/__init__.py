"""The local HTTP endpoint: stats, Prometheus /metrics, and (later) OpenAI-compatible /v1."""

from jarvis.http.app import RunningServer, create_app, start_server
from jarvis.http.stats_source import HubStatsSource, StatsSource

__all__ = ["create_app", "start_server", "RunningServer", "StatsSource", "HubStatsSource"]
