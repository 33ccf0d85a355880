"""Remote OpenAI-compatible engines (vLLM, llama-server, Ollama, another JARVIS) as models.

- settings: the `[remotes.NAME]` tables and `--remote NAME=URL`
- client: one `openai.AsyncOpenAI` per replica (the key read from the variable `api_key_env` names)
- replicas: each base URL's health and outstanding requests; least-outstanding choice
- health: the probe at start and every `health_interval_s`
- backend: the engine's face (submit / stream / cancel / queue_depth / busy) for a remote model
- server_metrics: the server's own Prometheus `/metrics`, read at 1 Hz
- registry: every configured remote, its models for the catalog, its status for `jarvis models`

Nothing here is imported by the core unless a remote is configured: `openai` loads lazily.
"""
