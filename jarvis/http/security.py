"""Middlewares, outermost first: timing, Anthropic-shaped errors on /v1/messages, JSON errors, Host check, Origin check (and preflights),
bearer token, body size, JSON bodies. The cross-site ones live in cross_site.py.

The Host check stops DNS rebinding: a web page on evil.com that resolves its name to 127.0.0.1
still sends `Host: evil.com`, so it is refused even though the socket is local.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import time
from typing import Awaitable, Callable, Iterable

from aiohttp import web

from jarvis.errors import JarvisError
from jarvis.http.anthropic.errors import anthropic_errors
from jarvis.http.cross_site import OriginPolicy, json_bodies, origin_guard
from jarvis.http.errors import error_response, jarvis_error_response

log = logging.getLogger("jarvis.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
OPEN_PATHS = frozenset({"/health"})  # reachable without the token: liveness probes carry none


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# RFC 9110 §7.2 / RFC 3986: Host = ( "[" IPv6 "]" / IPv4 / reg-name ) [ ":" *DIGIT ].
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._~-]+))(?::\d*)?")


def host_name(header: str) -> str:
    """'localhost:5050' -> 'localhost', '[::1]:5050' -> '::1', '[::1]' -> '::1'; "" for anything
    that is not a valid Host value ('::1' unbracketed, 'localhost:abc', '[::1]evil'), so it is
    refused rather than guessed at."""
    m = _HOST.fullmatch(header.strip().lower())
    return (m.group("ipv6") or m.group("name")) if m else ""


@web.middleware
async def process_time(request: web.Request, handler: Handler) -> web.StreamResponse:
    """X-Process-Time (seconds) on every response, errors included: it is the outermost layer."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as e:  # a redirect or the like, which json_errors lets through
        e.headers["X-Process-Time"] = f"{time.perf_counter() - started:.6f}"
        raise
    if not response.prepared:  # a streamed response has sent its headers already
        response.headers["X-Process-Time"] = f"{time.perf_counter() - started:.6f}"
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status == 404:
            message = f"No route for {request.method} {request.path}."
        elif e.status == 405:
            message = f"{request.method} is not allowed on {request.path}."
        elif e.status == 413:  # a chunked body past client_max_size, caught when a handler read it
            return error_response(413, f"{e.text} (server.max_body_kb).", "request_too_large")
        else:
            message = e.text or e.reason
        headers = {k: v for k, v in e.headers.items() if k.lower() in ("allow", "www-authenticate", "retry-after")}
        return error_response(e.status, message, e.reason.lower().replace(" ", "_"), headers)
    except JarvisError as e:
        return jarvis_error_response(e)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "Internal error; see the JARVIS log for details.", "internal_error")


def host_check(allowed_hosts: Iterable[str]) -> Callable:
    allowed = frozenset(h.lower().strip("[]") for h in allowed_hosts)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = host_name(request.headers.get("Host", ""))
        if host not in allowed:
            return error_response(403, f"Host {host!r} is not allowed: this endpoint answers only to "
                                       f"{', '.join(sorted(allowed))}.", "forbidden_host")
        return await handler(request)

    return middleware


def bearer_token(token: str) -> Callable:
    """`Authorization: Bearer <token>`, or `x-api-key: <token>` as Anthropic clients send it."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode()
            key = f"Bearer {request.headers.get('x-api-key', '')}".encode()
            # Both compared, in constant time: no timing oracle.
            if not (hmac.compare_digest(given, expected) | hmac.compare_digest(key, expected)):
                return error_response(401, "Missing or wrong token: send 'Authorization: Bearer <server.token>' "
                                           "(or 'x-api-key: <server.token>').",
                                      "invalid_api_key", {"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return middleware


def body_limit(max_bytes: int) -> Callable:
    """Refuses a declared oversize body before anyone reads it; a chunked one is stopped by the
    application's client_max_size when a handler reads it (aiohttp raises 413, json_errors shapes it)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > max_bytes:
            return error_response(413, f"The request body is {request.content_length} bytes; the limit is "
                                       f"{max_bytes} (server.max_body_kb).", "request_too_large")
        return await handler(request)

    return middleware


def allowed_hosts_for(bind_host: str) -> set[str]:
    """Loopback names, plus the bound address when it is a specific non-loopback one."""
    hosts = set(LOOPBACK_NAMES)
    if bind_host and bind_host not in ("0.0.0.0", "::"):
        hosts.add(bind_host)
    return hosts


def security_middlewares(bind_host: str, token: str, max_body_bytes: int, origins: OriginPolicy) -> list:
    # The Origin check comes before the token: a browser's preflight never carries one.
    middlewares = [process_time, anthropic_errors, json_errors, host_check(allowed_hosts_for(bind_host)), origin_guard(origins)]
    if token:
        middlewares.append(bearer_token(token))
    middlewares += [body_limit(max_body_bytes), json_bodies]
    return middlewares
