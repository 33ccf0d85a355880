"""Remote OpenAI-compatible engines (vLLM, llama-server, Ollama, another JARVIS) as models.

- settings: the `[remotes.NAME]` tables and `--remote NAME=URL`
- client: one `openai.AsyncOpenAI` per replica (the key read from the variable `api_key_env` names)
- replicas: each base URL's health and outstanding requests; least-outstanding choice
- health: the probe at start and every `health_interval_s`
- wire: a request in the OpenAI wire format, and the streamed answer back (tools, formats,
  logprobs and reasoning passed through)
- backend: the server (queue, replicas, upstream calls) and one of its models as a Backend
- server_metrics: the server's own Prometheus `/metrics`, read at 1 Hz
- source: one remote as a backend source: its models for the catalog, probes, status

Nothing here is imported by the core until a remote is configured: `openai` loads lazily.
"""


def sources_from_settings(settings, catalog, bus) -> list:
    """Every configured remote as a backend source; [] when none is configured (nothing imported)."""
    if not settings.remotes:
        return []
    from jarvis.remote.source import sources_from_settings as make

    return make(settings, catalog, bus)
