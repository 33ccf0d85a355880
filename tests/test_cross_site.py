"""Cross-site requests against a real Runtime on 127.0.0.1:0, sent with a real HTTP client (aiohttp)
carrying the headers a browser would: a page the user visits must not be able to run a model."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from jarvis.config import load_settings
from jarvis.errors import ConfigError
from jarvis.telemetry import RequestRecord, StepRecord

from bench.support.server import ServerThread
from bench.support.settings import make_settings

CHAT = {"model": "", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 2, "temperature": 0}
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """No model preloaded: whatever loads or runs one shows in the records below."""
    data = tmp_path_factory.mktemp("cross-site-data")
    with ServerThread(make_settings(data, JARVIS_SERVER_ALLOWED_ORIGINS="https://app.example,http://lan.example:*"),
                      preload=False) as s:
        yield s


@pytest.fixture
def model_work(server):
    """Every request the Assistant finished and every engine step taken while the test ran."""
    seen: list[object] = []
    unsubscribe = server.runtime.bus.subscribe(
        lambda r: seen.append(r) if isinstance(r, (RequestRecord, StepRecord)) else None)
    yield seen
    unsubscribe()


def send(server, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None):
    async def go():
        async with aiohttp.ClientSession() as session:
            async with session.request(method, server.url + path, headers=headers or {}, data=body) as resp:
                return resp.status, dict(resp.headers), await resp.read()
    return asyncio.run(go())


def test_the_text_plain_post_from_a_foreign_page_is_refused_and_runs_nothing(server, model_work):
    """The exact attack: a page on evil.example POSTs a 'simple' (no preflight) request."""
    body = b'{"model": "", "messages": [{"role": "user", "content": "rm -rf"}], "max_tokens": 64}'
    status, headers, raw = send(server, "POST", "/v1/chat/completions", body=body,
                                headers={"Content-Type": "text/plain", "Origin": EVIL})
    assert status == 403 and b"forbidden_origin" in raw and b"server.allowed_origins" in raw
    assert "Access-Control-Allow-Origin" not in headers
    assert model_work == [] and server.runtime.assistant.manager.loaded() == []
    assert server.runtime.assistant.manager.loading() == []


def test_a_foreign_origin_is_refused_whatever_the_body_or_path(server, model_work):
    for method, path, body, content_type in [("POST", "/v1/chat/completions", b"{}", "application/json"),
                                             ("POST", "/v1/completions", b"{}", "application/json"),
                                             ("GET", "/v1/models", None, None),
                                             ("GET", "/api/models/stats", None, None)]:
        headers = {"Origin": EVIL, **({"Content-Type": content_type} if content_type else {})}
        status, resp_headers, _ = send(server, method, path, headers=headers, body=body)
        assert status == 403, (method, path)
        assert "Access-Control-Allow-Origin" not in resp_headers
    assert model_work == []


@pytest.mark.parametrize("origin", ["http://localhost.evil.example", "http://127.0.0.1.nip.io", "null",
                                    "https://127.0.0.1", "http://evil.example@127.0.0.1", "http://127.0.0.1/x",
                                    "http://127.0.0.1:notaport", "https://app.example:8443", "https://lan.example:1",
                                    "http://app.example", ""])
def test_origins_that_only_look_local_or_allowed_are_refused(server, origin):
    status, headers, _ = send(server, "GET", "/v1/models", headers={"Origin": origin})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8080", "http://localhost:3000", "http://[::1]:5173",
                                    "http://localhost", "https://app.example", "https://app.example:443",
                                    "http://lan.example:1234", "HTTP://LOCALHOST:3000"])
def test_allowed_origins_get_cors_headers(server, origin):
    status, headers, _ = send(server, "GET", "/v1/models", headers={"Origin": origin})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == origin and "Origin" in headers["Vary"]


def test_no_origin_no_cors_headers(server):
    status, headers, _ = send(server, "GET", "/v1/models")
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


def test_preflight_is_answered_for_allowed_origins_only(server, model_work):
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, authorization"}
    status, headers, _ = send(server, "OPTIONS", "/v1/chat/completions",
                              headers={"Origin": "http://localhost:3000", **ask})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert {"content-type", "authorization"} <= {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    status, headers, _ = send(server, "OPTIONS", "/v1/chat/completions", headers={"Origin": EVIL, **ask})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    assert model_work == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None, "application/jsonp", "text/json"])
def test_post_bodies_must_be_declared_json(server, model_work, content_type):
    """Without an Origin too (an old browser, a form): only application/json runs anything."""
    headers = {"Content-Type": content_type} if content_type else {}
    body = b'{"model": "", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}'
    status, _, raw = send(server, "POST", "/v1/chat/completions", headers=headers, body=body)
    assert status == 415 and b"application/json" in raw
    assert model_work == []


def test_an_allowed_page_can_really_chat_and_read_the_stream(tmp_path):
    """The allowed path end to end: JSON with a charset, from a loopback page, streamed; the
    CORS header is on the stream's headers (sent before the first event)."""
    import json

    body = json.dumps({**CHAT, "stream": True, "cache": False}).encode()
    with ServerThread(make_settings(tmp_path)) as own:
        status, headers, raw = send(own, "POST", "/v1/chat/completions", body=body,
                                    headers={"Content-Type": "application/json; charset=utf-8",
                                             "Origin": "http://127.0.0.1:8000"})
    assert status == 200 and raw.rstrip().endswith(b"data: [DONE]")
    assert headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"


@pytest.mark.parametrize("bad", ["evil.example", "http://evil.example/path", "ftp://x.example", "*",
                                 "http://x.example:99999x"])
def test_a_malformed_allowed_origin_setting_is_one_clear_error(bad):
    with pytest.raises(ConfigError) as e:
        load_settings(environ={"JARVIS_SERVER_ALLOWED_ORIGINS": bad})
    assert "server.allowed_origins" in str(e.value) and "scheme://host" in str(e.value)
