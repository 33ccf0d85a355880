"""The HTTP fuzz oracle: whether a reply to a fuzzed request obeys the endpoint's rules.

It judges the request from the bytes that were sent and from rules written out here. It never
imports the server's own parsing (jarvis.http.security): a Host-parsing bug there would otherwise
pass both the server and its judge.

- Never a 5xx but 503 (busy); a reply is HTTP or nothing (aiohttp may just close).
- A 2xx only when every Host is on the allow-list below, the token is right (except on /health)
  and the declared body fits the limit.
- Never a 403 for a request with one allowed Host and no `Origin`: 403 is the Host check's answer
  (and a browser page's: a request with an `Origin` the server does not trust may get one).
- Any other 4xx is a refusal the server may choose: 404/405 for paths and methods, 400 for
  malformed requests and bodies, 413 for a body over the limit, 415 for a POST body not declared
  `application/json`, 429 for a burst.
"""

from __future__ import annotations

import re

from .http_fuzz import case_request

# Host values (RFC 9110 7.2: uri-host [":" port], port = *DIGIT) the endpoint must accept, and the
# only ones it may serve: loopback, whatever the port, so a DNS-rebinding page (Host: evil.com)
# never gets an answer. Names compare case-insensitively, in ASCII.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
PORT = re.compile(r"[0-9]*")


def host_allowed(value: str) -> bool:
    """'localhost', 'LOCALHOST:5050', '127.0.0.1:1', '[::1]', '[::1]:8080' -> True."""
    value = value.strip(" \t")  # whitespace around a header value is not part of it (RFC 9110 5.5)
    if not value.isascii():
        return False
    value = value.lower()
    for name in LOOPBACK_HOSTS:
        if value == name or value.startswith(name + ":") and PORT.fullmatch(value[len(name) + 1:]):
            return True
    return False


def sent_headers(request: bytes) -> list[tuple[str, str]]:
    """(lower-case name, value) of each header line, split where HTTP splits them: at CRLF. So a
    value with an injected CRLF counts as the header lines it makes on the wire."""
    head = request.split(b"\r\n\r\n", 1)[0].decode("utf-8", "surrogateescape")
    headers = []
    for line in head.split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.append((name.lower(), value.strip(" \t")))
    return headers


def check_response(case: dict, status: int | None, raw: bytes, token: str, max_body: int) -> str | None:
    """None when the reply obeys the rules; else what is wrong."""
    if status is None:
        return None if not raw else f"not an HTTP reply: {raw[:80]!r}"
    if status >= 500 and status != 503:
        return f"{status} for {case}"
    headers = sent_headers(case_request(case))
    hosts = [value for name, value in headers if name == "host"]
    if 200 <= status < 300:
        if not hosts or not all(host_allowed(h) for h in hosts):
            return f"2xx with Host {case['host']!r}"
        auth = next((value for name, value in headers if name == "authorization"), None)
        if token and case["path"].split("?")[0] != "/health" and auth != f"Bearer {token}":
            return f"2xx with Authorization {case['auth']!r}"
        if case["content_length"] is not None and case["content_length"] > max_body:
            return f"2xx with Content-Length {case['content_length']}"
    if status == 403 and len(hosts) == 1 and host_allowed(hosts[0]) and not any(n == "origin" for n, _ in headers):
        return f"403 for the allowed Host {case['host']!r}"
    return None
