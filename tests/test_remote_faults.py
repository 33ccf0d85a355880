"""Remote engines when things go wrong, against real servers on loopback: another `jarvis serve`
as a remote (two replicas, one killed mid-reply), an unreachable remote, a slow one, and a client
that leaves while the remote is generating."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import urllib.request

import aiohttp
import pytest

from jarvis.errors import RemoteError, RemoteTimeout, RemoteUnavailable
from tests.support.remote_servers import (JarvisServe, SlowServer, VllmMetricsServer, closed_port,
                                          read_two_events_then_leave, with_remote)
from bench.support.server import ServerThread
from bench.support.settings import make_settings
from tests.support.until import until, until_async

LONG_PROMPT = "Write a very long story about a dragon who learns to count to one thousand."


def counter(url: str, name: str, **labels) -> float:
    """A sample's value from a server's /metrics (0 when absent)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """Another JARVIS, in its own process, with the bundled model loaded."""
    with JarvisServe(tmp_path_factory.mktemp("upstream")) as server:
        yield server


def test_an_unreachable_remote_fails_fast_naming_itself(tmp_path, capsys, monkeypatch):
    port = closed_port()
    settings = with_remote(make_settings(tmp_path), "dead", f"http://127.0.0.1:{port}/v1", health_interval_s=3600)
    with ServerThread(settings, preload=False) as server:
        backend = server.runtime.assistant.backends.get("dead").backend

        async def ask():
            async with aiohttp.ClientSession() as s:
                async with s.post(server.base_url + "/chat/completions", json={
                        "model": "dead/any", "messages": [{"role": "user", "content": "hi"}]}) as r:
                    return r.status, await r.json()

        for _ in range(3):
            status, body = asyncio.run(ask())
            assert status == 503 and body["error"]["code"] == "remote_unavailable"
            assert "'dead'" in body["error"]["message"] and "connect" in body["error"]["message"].lower()
        # Fast: no request even tried to connect; the probe's verdict answered them.
        assert [r.started for r in backend.replicas] == [0]

    from jarvis.cli import main

    monkeypatch.setenv("JARVIS_GENERAL_DATA_DIR", str(tmp_path))
    assert main(["models", "--remote", f"dead=http://127.0.0.1:{port}/v1"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"dead/\*\s+UNREACHABLE .*remote dead \(http://127.0.0.1:{port}/v1\): ConnectError", out)
    assert main(["doctor", "--remote", f"dead=http://127.0.0.1:{port}/v1"]) == 0
    assert f"dead: UNREACHABLE, http://127.0.0.1:{port}/v1: ConnectError" in capsys.readouterr().out


def test_an_unreachable_remote_comes_back_when_a_probe_succeeds(tmp_path):
    port = closed_port()
    settings = with_remote(make_settings(tmp_path), "late", f"http://127.0.0.1:{port}/v1", health_interval_s=0.2)

    async def scenario():
        from jarvis.assistant import Assistant

        a = Assistant(settings)
        await a.start(warmup=False)
        try:
            with pytest.raises(RemoteUnavailable):
                await a.chat(a.request("hi", model="late/big-70b", max_tokens=2))
            with VllmMetricsServer(port=port):  # the server starts on that port
                await until_async(lambda: a.backends.get("late").backend.reachable)
                # Its models were published before the probe marked it up (health.py): no wait here.
                assert "late/big-70b" in [m.name for m in a.catalog.snapshot().models]
                await a.backends.prepare("late/big-70b")  # no longer refused
        finally:
            await a.close()

    asyncio.run(scenario())


def test_a_slow_remote_times_out(tmp_path):
    with SlowServer(delay_s=60) as slow:
        settings = with_remote(make_settings(tmp_path), "slow", slow.base_url, timeout_s=0.5, health_interval_s=3600)

        async def ask():
            from jarvis.assistant import Assistant

            a = Assistant(settings)
            try:
                return await asyncio.wait_for(
                    a.chat(a.request("hi", model="slow/sleepy", max_tokens=3, use_cache=False)), 30)
            finally:
                await a.close()

        with pytest.raises(RemoteTimeout) as e:
            asyncio.run(ask())
        assert e.value.http_status == 504 and "'slow'" in str(e.value) and "timeout_s" in str(e.value)


def test_two_replicas_one_killed_mid_reply(tmp_path, upstream):
    """The reply streaming from the replica that dies fails clearly (not retried: text was sent);
    the requests after it go to the live replica, including the one that found the dead one first."""
    with JarvisServe(tmp_path / "doomed") as doomed:
        settings = with_remote(make_settings(tmp_path), "pair", doomed.base_url, replicas=[upstream.base_url],
                               health_interval_s=3600)

        async def scenario():
            from jarvis.assistant import Assistant

            a = Assistant(settings)
            backend = a.backends.get("pair").backend
            model = f"pair/{(await _first_model(a))}"
            try:
                stream = a.stream(a.request(LONG_PROMPT, model=model, max_tokens=400, temperature=0,
                                            use_cache=False))
                got = []
                with pytest.raises(RemoteError) as e:
                    async with contextlib.aclosing(stream):
                        async for chunk in stream:
                            got.append(chunk.text)
                            if len(got) == 1:
                                assert backend.replicas[0].outstanding == 1  # on the doomed replica
                                doomed.kill()
                assert got and "not retried" in str(e.value) and doomed.base_url in str(e.value)
                assert backend.replicas[1].started == 0  # never silently sent again elsewhere
                replies = [await asyncio.wait_for(a.chat(a.request(f"Say {w}.", model=model, max_tokens=4,
                                                                   use_cache=False)), 60)
                           for w in ("one", "two", "three")]
                assert all(r.text and r.record.backend == "pair" for r in replies)
                # The upstream JARVIS's own figures ride along beside ours (its `jarvis` field), and its usage.
                own = replies[-1].record.server_timings
                assert own["completion_tokens"] == replies[-1].record.completion_tokens and "ttft_ms" in own
                assert replies[-1].record.prompt_tokens == own["prompt_tokens"] > 0
                assert backend.replicas[1].started == 3 and backend.replicas[0].state == "down"
            finally:
                await a.close()

        asyncio.run(scenario())


async def _first_model(assistant) -> str:
    source = next(s for s in assistant.backends.sources() if s.served_by != "local")
    await source.ensure_probed()
    return source.backend.replicas[0].model_ids[0]


def test_a_client_that_leaves_cancels_the_request_upstream(tmp_path, upstream):
    """Through JARVIS to another JARVIS: the client drops the connection after two events; the
    upstream JARVIS counts that request as cancelled (it stopped generating), not finished."""
    settings = with_remote(make_settings(tmp_path), "up", upstream.base_url, health_interval_s=3600)
    with ServerThread(settings, preload=False) as server:
        source = server.runtime.assistant.backends.get("up")
        server.call(source.ensure_probed())
        model = "up/" + source.backend.replicas[0].model_ids[0]
        before = counter(upstream.url, "jarvis_requests_total", status="cancelled")
        ok_before = counter(upstream.url, "jarvis_requests_total", status="ok")

        read_two_events_then_leave(server.base_url, model, 400)
        until(lambda: counter(upstream.url, "jarvis_requests_total", status="cancelled") == before + 1)
        assert counter(upstream.url, "jarvis_requests_total", status="ok") == ok_before

        # The upstream JARVIS serves Prometheus text: its own figures are read (1 Hz) and mapped.
        replica = source.backend.replicas[0]
        after = time.time()  # the upstream has decoded (steps set its queue and slot gauges) by now
        until(lambda: replica.metrics is not None and replica.metrics.read_at > after)
        m = replica.metrics
        assert (m.kind, m.running is not None, m.waiting is not None, m.kv_cache_usage) == ("jarvis", True, True, None)
