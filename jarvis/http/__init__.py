"""The local HTTP endpoint: stats, Prometheus /metrics and the OpenAI-compatible /v1, Anthropic
/v1/messages and /v1/responses routes.

Nothing is imported here: `jarvis serve` imports the Runtime (and with it `stats_source`) before
aiohttp, so the default model's load can start while the HTTP stack is still being imported
(Runtime.start_http). Import from the submodules: `jarvis.http.app`, `jarvis.http.stats_source`.
"""
