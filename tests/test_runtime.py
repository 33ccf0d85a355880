"""One process: the Assistant and the local endpoint together. Real requests, then the endpoint
shows their real percentiles and Prometheus counts them."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jarvis.runtime import Runtime
from tests.support.process import ROOT, run_jarvis
from tests.support.until import until


def test_stats_endpoint_reports_the_real_requests(settings):
    async def body():
        runtime = Runtime(settings)
        await runtime.start(http=True, warmup=False, port=0)
        try:
            a = runtime.assistant
            replies = [await a.chat(a.request(f"Say {w}.", temperature=0, max_tokens=8)) for w in ("one", "two", "three")]
            runtime.hub.tick()
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{runtime.server.url}/api/performance/stats") as r:
                    stats = await r.json()
                async with http.get(f"{runtime.server.url}/metrics") as r:
                    metrics = await r.text()
                async with http.get(f"{runtime.server.url}/api/models/stats") as r:
                    models = await r.json()
                async with http.get(f"{runtime.server.url}/api/performance/history") as r:
                    history = await r.json()
            return replies, stats, metrics, models, history
        finally:
            await runtime.close()

    replies, stats, metrics, models, history = asyncio.run(body())
    latency = stats["requests"]["latency"]
    assert latency["count"] == 3
    measured = sorted(r.record.total_ms for r in replies)
    # The endpoint's P50 is the middle request's latency and its max the slowest one: the same
    # numbers, through an interpolation at a whole rank and JSON (approx: float formatting only).
    assert latency["p50_ms"] == pytest.approx(measured[1], rel=1e-9)
    assert latency["max_ms"] == pytest.approx(measured[-1], rel=1e-9)
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    duration = families["jarvis_request_duration_seconds"]
    counts = [s.value for s in duration.samples if s.name.endswith("_count")]
    assert sum(counts) == 3
    assert [m["name"] for m in models["loaded_models"]] == ["SmolLM2-135M-Instruct.Q4_1"]
    assert models["loaded_models"][0]["load_ms"] > 0
    points = history["points"]
    assert points and points[-1]["latency_p50_ms"] is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jarvis_serve_then_stats_and_models_loaded_from_the_cli(env):
    port = free_port()
    env = {**env, "JARVIS_SERVER_PORT": str(port), "JARVIS_MODELS_WARMUP": "default"}
    server = subprocess.Popen([sys.executable, "-m", "jarvis", "serve"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "serving on" in server.stdout.readline()
        # Warm-up loads the default model in the background.
        until(lambda: "SmolLM2" in run_jarvis(["models", "--loaded"], env).stdout)
        r = run_jarvis(["models", "--loaded"], env)
        assert r.returncode == 0 and "SmolLM2-135M-Instruct.Q4_1" in r.stdout, r.stderr
        stats = run_jarvis(["stats"], env)
        assert stats.returncode == 0
        assert "requests" in json.loads(stats.stdout)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)  # also closes the pipes
    assert server.returncode == 0, err


def test_cli_says_clearly_when_no_instance_runs(env):
    r = run_jarvis(["stats", "--server", f"http://127.0.0.1:{free_port()}"], env)
    assert r.returncode == 1 and "No JARVIS answers" in r.stderr


def test_a_busy_port_is_reported_and_the_assistant_still_works(settings):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]

        async def body():
            runtime = Runtime(settings)
            await runtime.start(http=True, warmup=False, port=port)
            try:
                reply = await runtime.assistant.chat(runtime.assistant.request("Hi", temperature=0, max_tokens=4))
                return runtime.server, runtime.server_error, reply
            finally:
                await runtime.close()

        server, error, reply = asyncio.run(body())
    assert server is None and str(port) in error and "server.port" in error
    assert reply.text
