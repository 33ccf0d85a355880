"""The HTTP fuzz oracle: whether a reply to a fuzzed request obeys the endpoint's rules.

It judges the request from the bytes that were sent and from rules written out here. It never
imports the server's own parsing (jarvis.http.security): a Host-parsing bug there would otherwise
pass both the server and its judge.

- Never a 5xx but 503 (busy); a reply is HTTP or nothing (aiohttp may just close).
- A 2xx only when every Host is on the allow-list below, the token is right (except on /health),
  the declared body fits the limit, any `Origin` is a loopback page's, and a POST (PUT, PATCH)
  declares `Content-Type: application/json`: a web page can send a form or text/plain without a
  CORS preflight, so those are refused (403 for a foreign page, 415 for a body that is not JSON).
- Never a 403 for a request with one allowed Host and no `Origin`: 403 is the Host check's answer
  (and the Origin check's, which may also refuse a page whose origin is odd in ways not listed here).
- Any other 4xx is a refusal the server may choose: 404/405 for paths and methods, 400 for
  malformed requests and bodies, 413 for a body over the limit, 415 for a body that is not JSON,
  429 for a burst.
"""

from __future__ import annotations

import re

from .http_fuzz import case_request

# Host values (RFC 9110 7.2: uri-host [":" port], port = *DIGIT) the endpoint must accept, and the
# only ones it may serve: loopback, whatever the port, so a DNS-rebinding page (Host: evil.com)
# never gets an answer. Names compare case-insensitively, in ASCII.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
PORT = re.compile(r"[0-9]*")
BODY_METHODS = ("POST", "PUT", "PATCH")


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


def origin_trusted(value: str) -> bool:
    """'http://localhost:5173', 'http://127.0.0.1', 'HTTP://[::1]:8080' -> True: a page served
    from this machine over http. Anything else ('null', https, another host) is a foreign page."""
    value = value.strip(" \t")
    return value[:7].lower() == "http://" and host_allowed(value[7:])


def is_json(content_type: str | None) -> bool:
    """'application/json' or 'application/json; charset=utf-8' (media types ignore case)."""
    return content_type is not None and content_type.split(";", 1)[0].strip(" \t").lower() == "application/json"


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
    origins = [value for name, value in headers if name == "origin"]
    if 200 <= status < 300:
        if not hosts or not all(host_allowed(h) for h in hosts):
            return f"2xx with Host {case['host']!r}"
        auth = next((value for name, value in headers if name == "authorization"), None)
        if token and case["path"].split("?")[0] != "/health" and auth != f"Bearer {token}":
            return f"2xx with Authorization {case['auth']!r}"
        if case["content_length"] is not None and case["content_length"] > max_body:
            return f"2xx with Content-Length {case['content_length']}"
        if not all(origin_trusted(value) for value in origins):
            return f"2xx with Origin {origins}"
        content_type = next((value for name, value in headers if name == "content-type"), None)
        if case["method"] in BODY_METHODS and not is_json(content_type):
            return f"2xx for a {case['method']} with Content-Type {content_type!r}"
    if status == 403 and len(hosts) == 1 and host_allowed(hosts[0]) and not origins:
        return f"403 for the allowed Host {case['host']!r}"
    return None
