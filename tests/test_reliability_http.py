"""HTTP against a real Runtime on 127.0.0.1:0. Hypothesis draws methods, paths, Host and
Authorization values, Content-Length lies and bodies; the oracle (bench/support/http_oracle.py: its own
written-out allow-list, none of the server's code) judges each reply: no 5xx but 503, no hang, a
2xx only for an allowed Host, the right token and a body within the limit, and no 403 for an
allowed Host. Every Host on the oracle's lists also goes to the server, and /v1/chat/completions
is held to exact answers."""

from __future__ import annotations

import json
import random
import string

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bench.support.http_fuzz import case_request, healthy, http_fuzz_cases, send_case
from bench.support.http_oracle import check_response
from bench.support.raw_http import build_request, raw_request
from bench.support.server import ServerThread
from bench.support.settings import make_settings, tune

TOKEN = "s3cret-token"
MAX_BODY = 64 * 1024

KNOWN_PATHS = ["/health", "/metrics", "/api/performance/stats", "/api/system/metrics", "/api/models/stats",
               "/api/performance/history", "/api/performance/history?seconds=0", "/v1/chat/completions",
               "/v1/models", "/", "/%2e%2e/etc/passwd", "//health", "/health?x=%ff%fe"]
PATH_CHARS = string.ascii_letters + string.digits + "/._-~%?&=+;:@!$'()*,[]"
HOSTS = ["localhost", "127.0.0.1", "[::1]", "[::1]:5050", "localhost:1", "evil.com", "localhost.evil.com",
         "127.0.0.1.nip.io", "", "[::1", "LOCALHOST", "0.0.0.0", "127.0.0.2", "localhost\r\nX: y"]
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", ""]
ORIGINS = ["http://localhost", "http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]", "null",
           "http://evil.example", "https://localhost", "http://localhost.evil.example", "file://", ""]
header_text = st.text(string.printable.strip(), max_size=30)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                           max_leaves=12)
chat_bodies = st.fixed_dictionaries({"model": st.text(max_size=10), "messages": json_values,
                                     "max_tokens": st.integers(-5, 2**65)})


@st.composite
def cases(draw, token: str):
    body = draw(st.one_of(st.just(b""), st.binary(max_size=2048),
                          json_values.map(lambda v: json.dumps(v).encode()),
                          chat_bodies.map(lambda v: json.dumps(v).encode()),
                          st.integers(MAX_BODY - 10, MAX_BODY + 10).map(lambda n: b"x" * n)))
    cl = draw(st.one_of(st.none(), st.just(len(body)), st.integers(0, 2 * MAX_BODY), st.integers(0, 10**15)))
    good_auth = f"Bearer {token}"
    return {
        "method": draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
                       | st.text(string.ascii_uppercase, min_size=1, max_size=8)),
        "path": draw(st.sampled_from(KNOWN_PATHS) | st.text(PATH_CHARS, max_size=40).map(lambda p: "/" + p)),
        "host": draw(st.none() | st.sampled_from(HOSTS) | st.text(string.printable.strip(), max_size=30)),
        "auth": draw(st.none() | st.sampled_from([good_auth, "", "Bearer", "Bearer wrong", good_auth.lower(),
                                                  good_auth + " ", "Basic Zm9vOmJhcg=="]) | st.text(max_size=30)),
        "extra": draw(st.lists(st.tuples(st.text(string.ascii_letters + "-", min_size=1, max_size=12),
                                         st.text(string.printable.strip(), max_size=30)), max_size=3)),
        "body": body,
        "content_length": cl,
        "content_type": draw(st.none() | st.sampled_from(CONTENT_TYPES) | header_text),
        "origin": draw(st.none() | st.sampled_from(ORIGINS) | header_text),
    }


@pytest.fixture(scope="module", params=["", TOKEN], ids=["no-token", "token"])
def server(request, tmp_path_factory):
    data = tmp_path_factory.mktemp("http-data")
    s = tune(make_settings(data), server={"token": request.param, "max_body_kb": MAX_BODY // 1024})
    # Preloaded: a model loaded by a request inside one test would count as that test's leaked thread.
    with ServerThread(s) as running:
        yield running, request.param


def _check(server, case):
    running, token = server
    status, raw = send_case(running.port, case)  # socket.timeout here is a hang: the test fails
    problem = check_response(case, status, raw, token, MAX_BODY)
    assert problem is None, problem
    assert healthy(running.port, token), f"the server stopped answering after {case}"


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_requests_get_no_5xx_and_the_checks_hold(server, data):
    _check(server, data.draw(cases(server[1])))


def _chat_completion(running, token: str, method: str) -> tuple[int | None, bytes]:
    headers = [("Host", "127.0.0.1"), ("Content-Type", "application/json")]
    if token:
        headers.append(("Authorization", f"Bearer {token}"))
    body = json.dumps({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4,
                       "temperature": 0}).encode()
    request = build_request(method, "/v1/chat/completions", headers, body, len(body))
    return raw_request(running.port, request, timeout=120)  # a real generation on a busy machine


def _json_body(raw: bytes) -> dict:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def test_post_v1_chat_completions_answers_a_chat_completion(server):
    running, token = server
    status, raw = _chat_completion(running, token, "POST")
    assert status == 200, raw[:500]
    reply = _json_body(raw)
    assert reply["object"] == "chat.completion"
    assert reply["model"] == running.model
    [choice] = reply["choices"]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    assert 0 < reply["usage"]["completion_tokens"] <= 4


def test_get_v1_chat_completions_is_405_and_says_post(server):
    running, token = server
    status, raw = _chat_completion(running, token, "GET")
    assert status == 405, raw[:500]
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert "\r\nallow: post" in head
    assert _json_body(raw)["error"]["message"]


def test_the_security_checks_under_plain_random_cases(server):
    running, token = server
    for case in http_fuzz_cases(random.Random(7), 40, token):
        _check(server, case)


def _case(**fields) -> dict:
    return {"method": "GET", "path": "/api/performance/stats", "host": "127.0.0.1", "auth": "Bearer tok",
            "extra": [], "body": b"", "content_length": None, **fields}


def test_the_fuzz_oracle_follows_http_whitespace_rules_and_still_catches_a_wrong_token():
    case = _case(auth="Bearer tok ")
    assert check_response(case, 200, b"", "tok", 1024) is None  # trailing OWS is not part of the value
    assert "Authorization" in check_response({**case, "auth": "Bearer tok2"}, 200, b"", "tok", 1024)
    assert "Authorization" in check_response({**case, "auth": None}, 200, b"", "tok", 1024)


MUST_ACCEPT = ["127.0.0.1", "127.0.0.1:5050", "localhost", "LocalHost:1", "LOCALHOST", "localhost:", "[::1]",
               "[::1]:8080", " localhost\t", "localhost\r\nX-After: y"]  # the last: an injected CRLF ends the value
# Not valid Host syntax (RFC 9112 3.2): loopback-looking, but refused like any other wrong Host.
INVALID_LOOPBACK = ["::1", "localhost:abc", "[::1]evil"]
MUST_REFUSE = [None, "", "evil.com", "localhost.evil.com", "127.0.0.1.nip.io", "0.0.0.0", "127.0.0.2", "[::1",
               "localhost:1:2", "\u217cocalhost", "evil.com\r\nHost: localhost", *INVALID_LOOPBACK]


@pytest.mark.parametrize("host", MUST_ACCEPT)
def test_the_oracle_lets_a_loopback_host_be_served_and_never_refused(host):
    case = _case(host=host)
    assert check_response(case, 200, b"", "tok", 1024) is None
    assert "403" in check_response(case, 403, b"", "tok", 1024)


@pytest.mark.parametrize("host", MUST_REFUSE)
def test_the_oracle_never_lets_another_host_be_served(host):
    case = _case(host=host)
    assert "Host" in check_response(case, 200, b"", "tok", 1024)
    assert check_response(case, 403, b"", "tok", 1024) is None


def _get_stats(server, host: str | None) -> int | None:
    running, token = server
    case = _case(host=host, auth=f"Bearer {token}" if token else None)
    status, raw = send_case(running.port, case)
    assert check_response(case, status, raw, token, MAX_BODY) is None
    return status


@pytest.mark.parametrize("host", MUST_ACCEPT)
def test_the_server_serves_every_loopback_host(server, host):
    assert _get_stats(server, host) == 200


@pytest.mark.parametrize("host", MUST_REFUSE)
def test_the_server_refuses_every_other_host(server, host):
    assert _get_stats(server, host) in (400, 403)


FOREIGN_PAGES = ["null", "http://evil.example", "https://localhost", "http://localhost.evil.example", "file://"]
LOOPBACK_PAGES = ["http://localhost", "http://LOCALHOST:5173", "http://127.0.0.1:8080", "http://[::1]"]
NOT_JSON = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"]


@pytest.mark.parametrize("origin", FOREIGN_PAGES)
def test_the_server_refuses_a_foreign_page(server, origin):
    running, token = server
    case = _case(auth=f"Bearer {token}" if token else None, origin=origin)
    status, raw = send_case(running.port, case)
    assert check_response(case, status, raw, token, MAX_BODY) is None
    assert status == 403, raw[:300]


@pytest.mark.parametrize("origin", LOOPBACK_PAGES)
def test_the_server_serves_a_loopback_page(server, origin):
    running, token = server
    case = _case(auth=f"Bearer {token}" if token else None, origin=origin)
    status, raw = send_case(running.port, case)
    assert status == 200, raw[:300]


@pytest.mark.parametrize("content_type", [None, *NOT_JSON])
def test_the_server_refuses_a_body_not_declared_json(server, content_type):
    """A page may POST a form or text/plain without a preflight: a chat request must say it is JSON."""
    running, token = server
    body = json.dumps({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 1}).encode()
    case = _case(method="POST", path="/v1/chat/completions", auth=f"Bearer {token}" if token else None, body=body,
                 content_length=len(body), content_type=content_type)
    status, raw = send_case(running.port, case)
    assert check_response(case, status, raw, token, MAX_BODY) is None
    assert status == 415, raw[:300]


def test_the_oracle_takes_a_403_for_a_browser_origin_and_a_415_for_a_body_that_is_not_json():
    page = _case(extra=[("Origin", "http://evil.example")])
    assert check_response(page, 403, b"", "tok", 1024) is None
    form = _case(method="POST", path="/v1/chat/completions", body=b"a=1", content_length=3,
                 extra=[("Content-Type", "application/x-www-form-urlencoded")])
    assert check_response(form, 415, b"", "tok", 1024) is None


@pytest.mark.parametrize("origin", [*FOREIGN_PAGES, "http://127.0.0.1.nip.io", ""])
def test_the_oracle_never_lets_a_foreign_page_be_served(origin):
    assert "Origin" in check_response(_case(origin=origin), 200, b"", "tok", 1024)


@pytest.mark.parametrize("origin", [None, *LOOPBACK_PAGES])
def test_the_oracle_lets_a_loopback_page_be_served(origin):
    assert check_response(_case(origin=origin), 200, b"", "tok", 1024) is None


@pytest.mark.parametrize("content_type", [None, "", *NOT_JSON])
def test_the_oracle_never_lets_a_body_that_is_not_declared_json_be_served(content_type):
    post = _case(method="POST", path="/v1/chat/completions", body=b"{}", content_length=2, content_type=content_type)
    assert "Content-Type" in check_response(post, 200, b"", "tok", 1024)


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=utf-8"])
def test_the_oracle_lets_a_json_body_be_served(content_type):
    post = _case(method="POST", path="/v1/chat/completions", body=b"{}", content_length=2, content_type=content_type)
    assert check_response(post, 200, b"", "tok", 1024) is None


def test_the_oracle_judges_the_bytes_on_the_wire():
    case = _case(host="localhost\r\nX-After: y")
    assert b"\r\nHost: localhost\r\nX-After: y\r\n" in case_request(case)


def test_the_oracle_does_not_borrow_the_servers_parsing():
    """A Host-parsing bug in jarvis.http must not pass its own judge: the oracle imports no jarvis code."""
    import ast

    import bench.support.http_oracle as oracle
    from pathlib import Path

    tree = ast.parse(Path(oracle.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("jarvis")], imported
