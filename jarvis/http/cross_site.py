"""Cross-site requests: what a web page the user visits may ask of the local endpoint.

A page on evil.example can POST to http://127.0.0.1:5050 without any CORS preflight when the body
is a "simple" one (text/plain, a form): the Host check passes, since the browser really targets
127.0.0.1. Browsers do send `Origin` with such requests, so:

- a request whose `Origin` is not on the allow-list (loopback pages, plus server.allowed_origins)
  is refused with 403 before anything runs;
- a POST must say `Content-Type: application/json` (415 otherwise): a page can only send that
  after a preflight, which only allowed origins pass;
- allowed origins get CORS headers (`Access-Control-Allow-Origin` echoes them) and their
  preflights (OPTIONS) are answered; nobody else gets either.

Requests without `Origin` (curl, the openai client, the desktop app) are not browsers' cross-site
requests and pass; the Host check and the token still apply to them.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web

from jarvis.http.errors import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOOPBACK_ORIGIN_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, x-api-key, anthropic-version"  # the last two: Anthropic clients
PREFLIGHT_MAX_AGE_S = "600"


class OriginPolicy:
    """Which `Origin` values may call the endpoint. Entries are `scheme://host[:port]`, where
    `:*` means any port (config.py validates them); loopback http origins are always allowed."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._exact: set[str] = set()
        self._any_port: set[tuple[str, str]] = set()  # (scheme, host)
        for entry in extra:
            entry = entry.lower().rstrip("/")
            if entry.endswith(":*"):
                scheme, _, host = entry[:-2].partition("://")
                self._any_port.add((scheme, host.strip("[]")))
            else:
                self._exact.add(_normalise(entry) or entry)

    def allows(self, origin: str) -> bool:
        try:
            parts = urlsplit(origin.strip().lower())
            host, _ = parts.hostname, parts.port  # .port raises on a port that is not a number
        except ValueError:
            return False
        if not host or parts.path or parts.query or parts.fragment or parts.username or parts.password:
            return False
        if parts.scheme == "http" and host in LOOPBACK_ORIGIN_HOSTS:
            return True
        return (parts.scheme, host) in self._any_port or _normalise(origin) in self._exact


def _normalise(origin: str) -> str | None:
    """'HTTPS://App.Example:443' -> 'https://app.example'; None when it is not an origin."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def is_json(content_type: str) -> bool:
    """'application/json' or 'application/json; charset=utf-8' (media types ignore case)."""
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def origin_guard(policy: OriginPolicy) -> Callable:
    """Refuses foreign origins (403) and answers allowed origins' preflights (before the token
    check: a preflight never carries one)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        if not policy.allows(origin):
            return error_response(403, f"Requests from the web page {origin!r} are not allowed: a site you visit "
                                       "must not drive your local models. To allow that page, add its origin "
                                       "to server.allowed_origins.", "forbidden_origin")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers={
                "Access-Control-Allow-Methods": ALLOWED_METHODS, "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_S})
        return await handler(request)

    return middleware


@web.middleware
async def json_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """415 for a POST (PUT, PATCH) to a route that takes one and that does not declare
    `Content-Type: application/json`. A wrong path or method keeps its 404 / 405."""
    routed = request.match_info.http_exception is None
    if routed and request.method in BODY_METHODS and not is_json(request.headers.get("Content-Type", "")):
        given = request.headers.get("Content-Type") or "none"
        return error_response(415, "The request body must be JSON: send 'Content-Type: application/json' "
                                   f"(got {given}).", "unsupported_media_type")
    return await handler(request)


def cors_headers(policy: OriginPolicy) -> Callable:
    """An on_response_prepare hook: CORS headers on every response (streams and errors included)
    to an allowed origin, and on no other. Vary: Origin keeps caches from mixing them up."""

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is None:
            return
        response.headers.add("Vary", "Origin")
        if policy.allows(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = "X-Process-Time, Retry-After"

    return add
