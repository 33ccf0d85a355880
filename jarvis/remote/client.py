"""One `openai.AsyncOpenAI` per replica: httpx underneath (pooling, timeouts, streaming).

The key is read from the environment variable `api_key_env` names, when the client is made; it
lives only inside the client (never in a setting, a log line, a record or a status dict).
"""

from __future__ import annotations

import os

NO_KEY = "no-key"  # what a keyless server gets: the client insists on some value


def api_key(api_key_env: str) -> str:
    return (os.environ.get(api_key_env) or NO_KEY) if api_key_env else NO_KEY


def make_client(base_url: str, api_key_env: str, timeout_s: float, max_connections: int):
    import httpx2 as httpx  # openai's own HTTP stack (its httpx fork), already installed with it
    import openai

    return openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key(api_key_env),
        max_retries=0,  # JARVIS retries itself, on another replica, and only before the first token
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        http_client=openai.DefaultAsyncHttpxClient(
            limits=httpx.Limits(max_connections=max_connections + 4, max_keepalive_connections=max_connections)),
    )


def root_url(base_url: str) -> str:
    """http://host:port/v1 -> http://host:port (where /metrics lives)."""
    return base_url[:-3] if base_url.endswith("/v1") else base_url
