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
