"""Fuzzed requests for the local endpoint. A case is a dict (method, path, host, auth, extra
headers, body, declared Content-Length; content_type and origin when it has them); `case_request`
renders it byte for byte and `send_case` puts it on the wire. The tests draw cases with
hypothesis; `http_fuzz_cases` draws plain-random ones for the long bench run."""

from __future__ import annotations

import json
import random
import socket

from .raw_http import build_request, raw_request


def case_request(case: dict) -> bytes:
    """The request a case stands for, as sent (the oracle reads the same bytes)."""
    headers = [] if case["host"] is None else [("Host", case["host"])]
    if case["auth"] is not None:
        headers.append(("Authorization", case["auth"]))
    headers += [(name, case[key]) for name, key in (("Content-Type", "content_type"), ("Origin", "origin"))
                if case.get(key) is not None]
    headers += case["extra"]
    return build_request(case["method"], case["path"], headers, case["body"], case["content_length"])


def send_case(port: int, case: dict) -> tuple[int | None, bytes]:
    chunked = any(k.lower() == "transfer-encoding" for k, _ in case["extra"])  # a body with no end chunk
    promised_more = chunked or case["content_length"] is not None and case["content_length"] > len(case["body"])
    try:
        return raw_request(port, case_request(case), timeout=2.0 if promised_more else 10.0)
    except socket.timeout:
        if promised_more:  # HTTP: the server waits for the body it was promised; the others go on
            return None, b""
        raise


def healthy(port: int, token: str) -> bool:
    """The server still answers an ordinary authorised request."""
    headers = [("Host", "127.0.0.1")] + ([("Authorization", f"Bearer {token}")] if token else [])
    status, _ = raw_request(port, build_request("GET", "/api/performance/stats", headers, b"", None))
    return status == 200


def http_fuzz_cases(rng: random.Random, n: int, token: str) -> list[dict]:
    """Plain-random cases for the long run (the tests draw theirs with hypothesis)."""
    paths = ["/health", "/metrics", "/api/performance/stats", "/api/system/metrics", "/api/models/stats",
             "/api/performance/history", "/api/performance/history?seconds=-1", "/v1/chat/completions",
             "/v1/models", "/", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "//health", "/health?x=%ff",
             "/api/performance/history?seconds=nan", "/api/performance/history?seconds=1e309"]
    hosts = [None, "localhost", "127.0.0.1", "[::1]:1", "localhost:5050", "evil.com", "localhost.evil.com",
             "127.0.0.1.nip.io", "", " ", "[::1", "LOCALHOST", "0.0.0.0", "127.0.0.2"]
    auths = [None, "", f"Bearer {token}", "Bearer", "Bearer wrong", f"bearer {token}", f"Bearer {token} ",
             "Basic Zm9vOmJhcg=="]
    content_types = [None, "application/json", "application/json", "Application/JSON; charset=utf-8", "text/plain",
                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"]
    origins = [None, None, None, None, "http://localhost:5173", "http://127.0.0.1", "http://evil.example", "null",
               "https://localhost", "http://localhost.evil.example"]
    out = []
    for _ in range(n):
        body_kind = rng.choice(("none", "bytes", "json", "big"))
        body = {"none": b"", "bytes": rng.randbytes(rng.randrange(0, 512)),
                "json": json.dumps({"model": rng.choice(["", "x", "../x"]), "messages": [
                    {"role": rng.choice(["user", "system", 3]), "content": rng.choice(["hi", None, 7])}],
                    "max_tokens": rng.choice([1, -1, 2**64, "4"])}).encode(),
                "big": b"x" * rng.randrange(1, 3 * 2**20)}[body_kind]
        cl = rng.choice((len(body), len(body), None, 0, len(body) + 10, max(0, len(body) - 1), 10**12))
        if cl is not None and cl > len(body) + 10:
            body = body[:1024]
        out.append({"method": rng.choice(("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "FOO")),
                    "path": rng.choice(paths), "host": rng.choice(hosts), "auth": rng.choice(auths),
                    "extra": rng.choice(([], [("X-Junk", "\u00ff" * 10)], [("Transfer-Encoding", "chunked")])),
                    "body": body, "content_length": cl, "content_type": rng.choice(content_types),
                    "origin": rng.choice(origins)})
    return out
