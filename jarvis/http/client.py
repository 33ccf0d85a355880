"""A tiny client for `jarvis stats` and `jarvis models --loaded`: read a running instance."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from jarvis.errors import JarvisError


def fetch_json(settings, path: str, server: str | None = None) -> dict:
    base = (server or f"http://{settings.server.host}:{settings.server.port}").rstrip("/")
    request = urllib.request.Request(base + path)
    if settings.server.token:
        request.add_header("Authorization", f"Bearer {settings.server.token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise JarvisError(f"{base}{path} answered {e.code}: {e.read()[:200].decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as e:
        raise JarvisError(f"No JARVIS answers at {base} ({getattr(e, 'reason', e)}). Start one with "
                          "`jarvis` or `jarvis serve`, or pass --server URL.") from None


def stream_chat(settings, server: str, body: dict, timeout: float = 600):
    """POST /v1/chat/completions with stream=true on a running instance; yields (text, final)
    pairs: text deltas, then ("", the last event carrying `usage` and `jarvis`). Stdlib only."""
    base = server.rstrip("/")
    data = json.dumps({**body, "stream": True, "stream_options": {"include_usage": True}}).encode()
    request = urllib.request.Request(base + "/v1/chat/completions", data=data, method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
    if settings.server.token:
        request.add_header("Authorization", f"Bearer {settings.server.token}")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = e.reason
        raise JarvisError(f"{base} answered {e.code}: {message}") from None
    except (urllib.error.URLError, OSError) as e:
        raise JarvisError(f"No JARVIS answers at {base} ({getattr(e, 'reason', e)}). Start one with "
                          "`jarvis` or `jarvis serve`, or check --server.") from None
    with response:
        for raw in response:  # one SSE line at a time
            line = raw.decode("utf-8").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                raise JarvisError(event["error"]["message"])
            if event.get("usage"):
                yield "", event
            elif event.get("choices"):
                text = event["choices"][0].get("delta", {}).get("content")
                if text:
                    yield text, None
