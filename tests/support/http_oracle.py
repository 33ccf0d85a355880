"""The HTTP fuzz oracle: whether a reply to a fuzzed request obeys the endpoint's rules."""

from __future__ import annotations


def check_response(case: dict, status: int | None, raw: bytes, token: str, max_body: int) -> str | None:
    """None when the reply obeys the rules; else what is wrong."""
    if status is None:
        return None if not raw else f"not an HTTP reply: {raw[:80]!r}"  # aiohttp may just close
    if status >= 500 and status != 503:
        return f"{status} for {case}"
    if 200 <= status < 300:
        host = case["host"]
        from jarvis.http.security import host_name

        if host is None or host_name(host) not in ("localhost", "127.0.0.1", "::1"):
            return f"2xx with Host {host!r}"
        # Whitespace around a header value is not part of it (RFC 9110 OWS): parsers strip it.
        auth = case["auth"].strip(" \t") if case["auth"] is not None else None
        if token and case["path"].split("?")[0] != "/health" and auth != f"Bearer {token}":
            return f"2xx with Authorization {case['auth']!r}"
        if case["content_length"] is not None and case["content_length"] > max_body:
            return f"2xx with Content-Length {case['content_length']}"
    return None
