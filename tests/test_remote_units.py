"""Remote engines without a server: the [remotes.NAME] settings and --remote, the replica choice,
and the mapping of vLLM's and llama-server's Prometheus text (real prometheus_client parser)."""

from __future__ import annotations

import pytest

from jarvis.config import load_settings
from jarvis.errors import ConfigError
from jarvis.remote.replicas import Replica, pick
from jarvis.remote.server_metrics import parse
from jarvis.remote.settings import with_remotes


def test_remotes_tables_are_validated_like_every_setting(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[remotes.gpu]\nbase_url = "http://gpu-box:8000/v1/"\nmax_concurrency = 2\n'
                 'replicas = ["http://gpu-2:8000/v1"]\napi_key_env = "GPU_KEY"\n')
    s = load_settings(f, environ={})
    gpu = s.remotes["gpu"]
    assert (gpu.base_url, gpu.max_concurrency, gpu.timeout_s, gpu.health_interval_s) == \
        ("http://gpu-box:8000/v1", 2, 60, 30)
    assert gpu.urls == ["http://gpu-box:8000/v1", "http://gpu-2:8000/v1"]
    assert load_settings(environ={}).remotes == {}  # none by default


@pytest.mark.parametrize("body, words", [
    ('base_url = "ftp://x"', ["remotes.gpu.base_url", "'ftp://x'", "http(s)://host:port/v1"]),
    ('base_url = "http://x/v1"\nmax_concurrency = 0', ["remotes.gpu.max_concurrency", "0"]),
    ('base_url = "http://x/v1"\nmax_conc = 2', ["unknown key remotes.gpu.max_conc", "max_concurrency"]),
    ('base_url = "http://x/v1"\napi_key_env = "sk-live 123"', ["remotes.gpu.api_key_env", "never the key itself"]),
    ('max_concurrency = 2', ["remotes.gpu.base_url", "missing"]),
])
def test_a_bad_remote_names_the_file_the_key_and_the_value(tmp_path, body, words):
    f = tmp_path / "s.toml"
    f.write_text(f"[remotes.gpu]\n{body}\n")
    with pytest.raises(ConfigError) as e:
        load_settings(f, environ={})
    assert str(f) in str(e.value) or "settings" in str(e.value)
    for word in words:
        assert word in str(e.value)


def test_remote_option_adds_or_replaces_a_remote():
    s = with_remotes(load_settings(environ={}), ["a=http://127.0.0.1:8000/v1", "b=https://box.lan/v1"])
    assert {k: v.base_url for k, v in s.remotes.items()} == {"a": "http://127.0.0.1:8000/v1", "b": "https://box.lan/v1"}
    for bad in ("nourl", "=http://x/v1", "a/b=http://x/v1", "a=notaurl"):
        with pytest.raises(ConfigError, match="--remote|Remote name"):
            with_remotes(load_settings(environ={}), [bad])


def test_cli_remote_option_on_every_command_that_asks():
    from jarvis.cli import build_parser
    from jarvis.cli.common import settings_for

    for argv in (["--remote", "g=http://h:1/v1", "models"], ["serve", "--remote", "g=http://h:1/v1"],
                 ["chat", "--remote", "g=http://h:1/v1"], ["ask", "--remote", "g=http://h:1/v1", "hi"]):
        assert list(settings_for(build_parser().parse_args(argv)).remotes) == ["g"], argv


def test_the_least_outstanding_healthy_replica_is_picked():
    a, b, c = Replica("http://a/v1"), Replica("http://b/v1"), Replica("http://c/v1")
    assert pick([a, b, c]) is a  # ties: the configured order
    a.outstanding, b.outstanding, c.outstanding = 2, 1, 1
    assert pick([a, b, c]) is b and pick([a, b, c], [b]) is c
    c.failed("refused", hard=True)
    b.succeeded()
    b.failed("timeout")  # one failure of a replica that was up: still up
    assert b.healthy and not c.healthy and pick([a, b, c], [b]) is a
    b.failed("timeout")
    assert not b.healthy and pick([b, c]) is None
    b.succeeded(12.0)
    assert b.healthy and b.rtt_ms == 12.0 and b.last_error == ""


VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-70B"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-70B"} 5.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-70B"} 0.42
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-70B"} 1000.0
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-70B"} 250.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 4.0
vllm:time_to_first_token_seconds_count{model_name="m"} 4.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 2.0
"""

LLAMA_SERVER = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 120
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 300
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.25
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""


def test_vllm_and_llama_server_metrics_map_to_one_shape():
    v = parse(VLLM)
    # mean_ttft_s is computed (the histogram's sum over its count): approx
    assert (v.kind, v.running, v.waiting, v.kv_cache_usage, v.mean_ttft_s) == ("vllm", 3.0, 5.0, 0.42, pytest.approx(0.5))
    assert (v.prompt_tokens_total, v.generation_tokens_total) == (1000.0, 250.0)
    ls = parse(LLAMA_SERVER)
    assert (ls.kind, ls.running, ls.waiting, ls.kv_cache_usage) == ("llama.cpp", 2.0, 1.0, 0.25)
    assert (ls.prompt_tokens_total, ls.generation_tokens_total, ls.mean_ttft_s) == (120.0, 300.0, None)
    other = parse("# TYPE something_else gauge\nsomething_else 1\n")
    assert (other.kind, other.running, other.waiting, other.kv_cache_usage) == ("unknown", None, None, None)


def test_server_figures_beside_jarvis_s():
    from jarvis.stats_line import server_figures

    assert server_figures({"predicted_per_second": 61.24, "prompt_ms": 12.3, "predicted_n": 8}) == \
        "server: 61.2 tokens/s · prompt 12 ms"
    assert server_figures({}) == ""


def test_the_queue_in_front_of_a_remote_without_a_server():
    """max_concurrency 1 held by a request that never streams: the next waits (told it is 1st in
    line); cancelling it while
    it waits raises RequestCancelled and leaves nothing queued; past max_queue, QueueFull at once;
    a waiting request's own timeout ends its wait. No connection is ever made."""
    import asyncio

    from jarvis.errors import QueueFull, RequestCancelled, RequestTimeout
    from jarvis.remote.backend import RemoteBackend
    from jarvis.remote.settings import RemoteSettings
    from jarvis.request import ChatRequest, Message

    backend = RemoteBackend("q", RemoteSettings(base_url="http://127.0.0.1:9/v1", max_concurrency=1), max_queue=1)

    def req(**kw):
        return ChatRequest(messages=(Message("user", "hi"),), **kw)

    async def run():
        holder = backend.submit(req(), "q/m", "m")
        assert backend.in_flight == 1 and holder.gate.done()
        waiting = backend.submit(req(), "q/m", "m")
        assert backend.queue_depth == 1 and waiting.queue_position == 1
        with pytest.raises(QueueFull):
            backend.submit(req(), "q/m", "m")
        stream = backend.stream(waiting)
        first = await stream.__anext__()  # its place in line, as a local model's queue reports it
        assert first.text == "" and first.queue.position == 1 and not first.done
        task = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)  # it waits at the gate
        backend.cancel(waiting)
        with pytest.raises(RequestCancelled):
            await task
        await stream.aclose()
        assert backend.queue_depth == 0 and backend.in_flight == 1
        timed = backend.submit(req(timeout_s=0.01), "q/m", "m")
        with pytest.raises(RequestTimeout):
            async for _ in backend.stream(timed):
                pass
        assert backend.queue_depth == 0 and backend.in_flight == 1 and backend.replicas[0].started == 0

    asyncio.run(run())


def test_a_replica_is_healthy_only_once_its_models_are_in_the_catalog():
    """Two replicas of one remote, their /v1/models answered by hand (no server, no clock): each
    time a probe marks a replica up, the catalog already lists what that replica listed, even
    while the other replica has not answered yet."""
    import asyncio
    from types import SimpleNamespace

    from jarvis.catalog import Catalog
    from jarvis.remote.settings import RemoteSettings
    from jarvis.remote.source import RemoteSource
    from jarvis.telemetry import RecordBus

    class Models:
        """A client's `models.list`: each call waits for the answer the test gives it."""

        def __init__(self) -> None:
            self.answers: asyncio.Queue = asyncio.Queue()

        async def list(self, timeout):
            answer = await self.answers.get()
            if isinstance(answer, Exception):
                raise answer
            return SimpleNamespace(data=[SimpleNamespace(id=i, model_extra={}) for i in answer])

    async def scenario():
        catalog = Catalog(models_dirs=[], include_bundled=False)
        settings = RemoteSettings(base_url="http://a:1/v1", replicas=["http://b:1/v1"])
        source = RemoteSource("r", settings, catalog, RecordBus())
        listed = lambda: [m.name for m in catalog.snapshot().models]  # noqa: E731
        seen_when_up: dict[str, list[str]] = {}
        up = {replica.url: asyncio.Event() for replica in source.backend.replicas}
        for replica in source.backend.replicas:
            replica.client = SimpleNamespace(models=Models())
            marked_up = replica.succeeded

            def succeeded(rtt_ms=None, replica=replica, marked_up=marked_up):
                seen_when_up[replica.url] = listed()  # what a request would find at that moment
                marked_up(rtt_ms)
                up[replica.url].set()
            replica.succeeded = succeeded
        a, b = source.backend.replicas

        # The first probe: neither replica answers; both are down and nothing is listed.
        probing = asyncio.create_task(source.probe())
        await a.client.models.answers.put(OSError("connection refused"))
        await b.client.models.answers.put(OSError("connection refused"))
        await probing
        assert not source.backend.reachable and listed() == []

        # The next: replica a answers while b has not: a is up and its model listed already.
        probing = asyncio.create_task(source.probe())
        await a.client.models.answers.put(["big-70b"])
        await up[a.url].wait()
        assert a.healthy and not b.healthy and not probing.done()
        assert seen_when_up == {"http://a:1/v1": ["r/big-70b"]}
        assert listed() == ["r/big-70b"]
        # Then b answers with one more model: listed before b counts as up.
        await b.client.models.answers.put(["big-70b", "small-8b"])
        await probing
        assert seen_when_up["http://b:1/v1"] == ["r/big-70b", "r/small-8b"] == listed()
        await source.close()

    asyncio.run(scenario())
