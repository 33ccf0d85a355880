"""HTTP fuzz against a real Runtime on 127.0.0.1:0: hypothesis draws methods, paths, Host and
Authorization values, Content-Length lies and bodies. No 5xx but 503, no hang (socket timeout),
and a 2xx only ever for an allowed Host, the right token and a body within the limit."""

from __future__ import annotations

import json
import random
import string

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from support.http_fuzz import healthy, http_fuzz_cases, send_case
from support.http_oracle import check_response
from support.raw_http import build_request, raw_request
from support.server import ServerThread
from support.settings import make_settings, tune

TOKEN = "s3cret-token"
MAX_BODY = 64 * 1024

KNOWN_PATHS = ["/health", "/metrics", "/api/performance/stats", "/api/system/metrics", "/api/models/stats",
               "/api/performance/history", "/api/performance/history?seconds=0", "/v1/chat/completions",
               "/v1/models", "/", "/%2e%2e/etc/passwd", "//health", "/health?x=%ff%fe"]
PATH_CHARS = string.ascii_letters + string.digits + "/._-~%?&=+;:@!$'()*,[]"
HOSTS = ["localhost", "127.0.0.1", "[::1]", "[::1]:5050", "localhost:1", "evil.com", "localhost.evil.com",
         "127.0.0.1.nip.io", "", "[::1", "LOCALHOST", "0.0.0.0", "127.0.0.2", "localhost\r\nX: y"]
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
    }


@pytest.fixture(scope="module", params=["", TOKEN], ids=["no-token", "token"])
def server(request, tmp_path_factory):
    data = tmp_path_factory.mktemp("http-data")
    s = tune(make_settings(data), server={"token": request.param, "max_body_kb": MAX_BODY // 1024})
    with ServerThread(s, preload=False) as running:
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


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_v1_chat_completions_is_4xx_until_the_openai_branch_lands(server, method):
    running, token = server
    headers = [("Host", "127.0.0.1"), ("Content-Type", "application/json")]
    if token:
        headers.append(("Authorization", f"Bearer {token}"))
    body = json.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode()
    status, _ = raw_request(running.port, build_request(method, "/v1/chat/completions", headers, body, len(body)))
    assert status is not None and 400 <= status < 500 or status == 200


def test_the_security_checks_under_plain_random_cases(server):
    running, token = server
    for case in http_fuzz_cases(random.Random(7), 40, token):
        _check(server, case)


def test_the_fuzz_oracle_follows_http_whitespace_rules_and_still_catches_a_wrong_token():
    case = {"method": "GET", "path": "/api/performance/stats", "host": "127.0.0.1", "auth": "Bearer tok ",
            "extra": [], "body": b"", "content_length": None}
    assert check_response(case, 200, b"", "tok", 1024) is None  # trailing OWS is not part of the value
    assert "Authorization" in check_response({**case, "auth": "Bearer tok2"}, 200, b"", "tok", 1024)
    assert "Authorization" in check_response({**case, "auth": None}, 200, b"", "tok", 1024)
