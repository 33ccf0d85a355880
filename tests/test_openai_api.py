"""The /v1 API through the REAL official `openai` client against a real Runtime on 127.0.0.1:0.

One server (bundled model preloaded) serves the module; tests that need other settings (a token,
a tiny body limit, a one-slot queue, a rate limit) start their own. Temperature 0 and small
max_tokens keep it fast. Replies that should really be generated twice pass `cache: false`
(a JARVIS extension) so the response cache cannot make a test pass by replaying.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import openai
import pytest
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from bench.support.server import ServerThread
from bench.support.settings import make_settings
from tests.support.until import until

NO_CACHE = {"cache": False}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerThread(make_settings(tmp_path_factory.mktemp("openai-data"))) as s:
        yield s


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120) as c:
        yield c


def ask(client, text: str, **kw):
    kw.setdefault("max_tokens", 16)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model="", messages=[{"role": "user", "content": text}], **kw)


# ---- the happy paths -----------------------------------------------------------------------
def test_list_and_retrieve_models(client, server):
    models = client.models.list().data
    assert [m.id for m in models] == [server.model]
    assert models[0].owned_by == "jarvis" and models[0].object == "model"
    assert client.models.retrieve(server.model).id == server.model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_chat_completion_shape_usage_and_jarvis_figures(client, server):
    r = client.chat.completions.create(
        model=server.model, max_completion_tokens=12, temperature=0,
        messages=[{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": [{"type": "text", "text": "Name a "}, {"type": "text", "text": "color."}]}])
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == server.model
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    figures = r.model_extra["jarvis"]
    assert set(figures) >= {"queue_ms", "ttft_ms", "decode_tokens_per_s", "total_ms", "cache_hit", "warm_start",
                            "model_load_ms", "cached_prompt_tokens"}
    assert figures["ttft_ms"] > 0 and figures["total_ms"] >= figures["ttft_ms"] and figures["warm_start"] is True


def test_streaming_chat_matches_non_streaming_and_reports_usage(client):
    question = "Write one sentence about the sea."
    whole = ask(client, question, max_tokens=20, extra_body=NO_CACHE)
    chunks = list(ask(client, question, max_tokens=20, stream=True, stream_options={"include_usage": True},
                      extra_body=NO_CACHE))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # greedy: the same tokens either way
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == whole.choices[0].finish_reason
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_include_usage_has_no_usage_chunk(client):
    chunks = list(ask(client, "Say hello.", max_tokens=6, stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_completions_endpoint_for_plain_prompts(client, server):
    r = client.completions.create(model=server.model, prompt="1, 2, 3, 4,", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text.startswith(" 5")
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 8
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=server.model, prompt="1, 2, 3, 4,", max_tokens=8, temperature=0, stream=True, extra_body=NO_CACHE)
        if c.choices)
    assert streamed == r.choices[0].text


def test_seeded_sampling_is_reproducible_and_the_cache_replays(client):
    kw = dict(max_tokens=16, temperature=0.9, seed=1234)
    first = ask(client, "Invent a name for a cat.", extra_body=NO_CACHE, **kw)
    second = ask(client, "Invent a name for a cat.", extra_body=NO_CACHE, **kw)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert not second.model_extra["jarvis"]["cache_hit"]  # really generated twice
    replayed = ask(client, "Invent a name for a cat.", **kw)  # cache allowed: the stored reply
    assert replayed.choices[0].message.content == first.choices[0].message.content


def test_stop_sequence_ends_the_reply_before_it(client):
    prompt = "1, 2, 3, 4,"
    full = client.completions.create(model="", prompt=prompt, max_tokens=16, temperature=0).choices[0].text
    assert " 7," in full
    r = client.completions.create(model="", prompt=prompt, max_tokens=16, temperature=0, stop=[" 7,", "zzz"])
    assert r.choices[0].text == full[:full.index(" 7,")]
    assert r.choices[0].finish_reason == "stop"
    chat = ask(client, "Count from 1 to 10 with commas.", max_tokens=24, stop="5")
    assert "5" not in chat.choices[0].message.content


def test_usage_counts_are_the_tokenizer_counts(client, server):
    """prompt_tokens must equal an independent tokenization of exactly what the engine decodes
    (llama-cpp-python's own vocab-only Llama, not JARVIS's tokenizer wrapper): the raw prompt
    for /v1/completions, the model's chat template rendered for /v1/chat/completions. For the
    reply, finish_reason "length" means exactly max_tokens were sampled; re-tokenizing the
    returned text may merge or split a token at a boundary, so it must agree within 2."""
    info = server.runtime.assistant.catalog.snapshot().get(server.model)
    vocab = Llama(model_path=str(info.path), vocab_only=True, verbose=False)
    try:
        def count(text: str, bos: bool = True) -> int:
            return len(vocab.tokenize(text.encode(), add_bos=bos, special=True))

        prompt = "Numbers: 1, 2, 3, 4, 5,"  # a raw continuation that runs on past max_tokens
        r = client.completions.create(model="", prompt=prompt, max_tokens=20, temperature=0, extra_body=NO_CACHE)
        assert r.usage.prompt_tokens == count(prompt)
        assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 20
        assert abs(count(r.choices[0].text, bos=False) - 20) <= 2

        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}]
        rendered = Jinja2ChatFormatter(template=info.chat_template, eos_token=vocab.detokenize([vocab.token_eos()]).decode(),
                                       bos_token=vocab.detokenize([vocab.token_bos()]).decode())(messages=messages).prompt
        c = client.chat.completions.create(model="", messages=messages, max_tokens=20, temperature=0, extra_body=NO_CACHE)
        assert c.usage.prompt_tokens == count(rendered)
        if c.choices[0].finish_reason == "length":
            assert c.usage.completion_tokens == 20
        assert abs(count(c.choices[0].message.content, bos=False) - c.usage.completion_tokens) <= 2
    finally:
        vocab.close()


def test_eight_concurrent_streams_complete_and_fill_the_four_slots(server):
    async def one(client, i: int) -> tuple[str, str]:
        stream = await client.chat.completions.create(
            model="", messages=[{"role": "user", "content": f"Tell me fact number {i} about {['owls', 'rivers', 'bread', 'stars'][i % 4]}."}],
            max_tokens=24, temperature=0, stream=True, extra_body=NO_CACHE)
        text, reason = "", ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                reason = chunk.choices[0].finish_reason or reason
        return text, reason

    async def main():
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300) as client:
            return await asyncio.gather(*(one(client, i) for i in range(8)))

    results = asyncio.run(main())
    assert len(results) == 8 and all(text and reason in ("stop", "length") for text, reason in results)
    stats = server.call(_get_json(server.url + "/api/performance/stats"))
    assert stats["queue"]["max_concurrent"] == 4  # batch_size 4: every slot was busy at once
    assert server.runtime.hub.perf.gauges()["active_slots.max"] == 4


async def _get_json(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await resp.json()


# ---- cancellation --------------------------------------------------------------------------
LONG = {"model": "", "prompt": "1, 2, 3, 4, 5,", "max_tokens": 400, "temperature": 0, "cache": False}


def test_disconnect_mid_stream_frees_the_slot(server):
    engine = server.engine()

    async def read_two_events_then_leave():
        async with aiohttp.ClientSession() as session:
            resp = await session.post(server.base_url + "/completions", json={**LONG, "stream": True})
            assert resp.status == 200
            lines = []
            while len(lines) < 2:
                line = (await resp.content.readline()).strip()
                if line:
                    lines.append(line)
            assert all(line.startswith(b"data: {") for line in lines)
            busy = engine.active_slots
            resp.close()  # drop the connection, as a client that crashed or was stopped would
            return busy

    perf = server.runtime.hub.perf
    cancelled = perf.counters().get("requests.cancelled", 0)
    assert asyncio.run(read_two_events_then_leave()) == 1
    until(lambda: engine.active_slots == 0)
    # It was cancelled, not left to run its 400 tokens out in the background.
    until(lambda: perf.counters().get("requests.cancelled", 0) == cancelled + 1)


def test_disconnect_while_waiting_for_a_whole_reply_frees_the_slot(server):
    engine = server.engine()

    async def give_up_once_it_runs():
        """Leave while the reply is being generated: once the request holds a slot (400 tokens,
        not a cache replay), whatever the machine's speed."""
        async with aiohttp.ClientSession() as session:
            post = asyncio.ensure_future(session.post(server.base_url + "/completions", json=LONG))
            while engine.active_slots == 0:
                assert not post.done(), "the whole reply came back before it held a slot"
                await asyncio.sleep(0.005)
            post.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await post

    perf = server.runtime.hub.perf
    cancelled = perf.counters().get("requests.cancelled", 0)
    asyncio.run(give_up_once_it_runs())
    until(lambda: engine.active_slots == 0)
    until(lambda: perf.counters().get("requests.cancelled", 0) == cancelled + 1)


# ---- errors in OpenAI's shape --------------------------------------------------------------
def test_malformed_json_is_400(server):
    async def post(data: bytes):
        async with aiohttp.ClientSession() as session:
            async with session.post(server.base_url + "/chat/completions", data=data,
                                    headers={"Content-Type": "application/json"}) as resp:
                return resp.status, await resp.json()

    status, body = server.call(post(b'{"model": "", "messages": ['))
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in body["error"]["message"]
    status, body = server.call(post(b'[1, 2]'))
    assert status == 400 and "JSON object" in body["error"]["message"]


@pytest.mark.parametrize("kw, param", [
    ({"temperature": 9}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"top_p": 0}, "top_p"),
    ({"stop": [1]}, "stop[0]"),
    ({"n": 2}, "n"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0].type"),
    ({"messages": []}, "messages"),
])
def test_invalid_fields_are_400_naming_the_field(client, kw, param):
    body = {"model": "", "messages": [{"role": "user", "content": "hi"}], **kw}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**body)
    assert e.value.status_code == 400 and e.value.param == param
    assert param.split("[")[0] in e.value.message


def test_unknown_fields_are_ignored(client):
    r = ask(client, "Hi!", max_tokens=4, extra_body={"logit_bias": {}, "user": "me", "something_new": [1]})
    assert r.choices[0].message.content is not None


def test_unknown_model_is_404_model_not_found(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "model_not_found" and server.model in e.value.message
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4o", prompt="hi", stream=True)


def test_unloadable_model_is_503(tmp_path, model_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "broken.gguf").write_bytes(b"GGUF" + b"\x00" * 64)
    settings = make_settings(tmp_path / "data", JARVIS_GENERAL_MODELS_DIRS=str(models))
    with ServerThread(settings, preload=False) as s, \
            openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0) as c:
        assert "broken" not in [m.id for m in c.models.list().data]  # only usable models are listed
        with pytest.raises(openai.InternalServerError) as e:
            c.chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}])
        assert e.value.status_code == 503 and e.value.code == "model_load_error"


def test_context_overflow_is_400_context_length_exceeded(tmp_path):
    settings = make_settings(tmp_path, JARVIS_ENGINE_TRUNCATE="false", JARVIS_ENGINE_CONTEXT_LENGTH="256")
    with ServerThread(settings) as s, openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0) as c:
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as e:
                c.chat.completions.create(model="", messages=[{"role": "user", "content": "word " * 400}],
                                          max_tokens=8, stream=stream)
            assert e.value.code == "context_length_exceeded" and e.value.param == "messages"
            assert "256" in e.value.message


def test_an_error_after_the_stream_started_is_an_error_event(tmp_path):
    """A failure after the first tokens went out travels as a `data: {"error": ...}` event, which
    the openai client raises. The failure is deterministic: once the first chunk has arrived, the
    running request's deadline is moved into the past, so the worker's next step times it out,
    however fast or slow this machine is."""
    settings = make_settings(tmp_path, JARVIS_ENGINE_REQUEST_TIMEOUT_S="600")
    with ServerThread(settings) as s, openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0) as c:
        received = ""
        with pytest.raises(openai.APIError) as e:
            for chunk in c.completions.create(model="", prompt="1, 2, 3, 4, 5,", max_tokens=400, temperature=0,
                                              stream=True):
                if not received:
                    running = [slot.sequence for slot in s.engine()._slots if slot.sequence is not None]
                    assert len(running) == 1
                    running[0].deadline = float("-inf")
                received += chunk.choices[0].text if chunk.choices else ""
        assert "request_timeout_s" in e.value.message
        assert received
        until(lambda: s.engine().active_slots == 0)


def test_bad_token_is_401(tmp_path):
    with ServerThread(make_settings(tmp_path, JARVIS_SERVER_TOKEN="s3cret"), preload=False) as s:
        with openai.OpenAI(base_url=s.base_url, api_key="wrong", max_retries=0) as c, \
                pytest.raises(openai.AuthenticationError) as e:
            c.models.list()
        assert e.value.status_code == 401
        with openai.OpenAI(base_url=s.base_url, api_key="s3cret", max_retries=0) as c:
            assert c.models.list().data


def test_oversize_body_is_413(tmp_path):
    with ServerThread(make_settings(tmp_path, JARVIS_SERVER_MAX_BODY_KB="1"), preload=False) as s, \
            openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0) as c:
        with pytest.raises(openai.APIStatusError) as e:
            c.chat.completions.create(model="", messages=[{"role": "user", "content": "x" * 4096}])
        assert e.value.status_code == 413 and e.value.code == "request_too_large"


def test_queue_full_is_429_with_retry_after(tmp_path):
    settings = make_settings(tmp_path, JARVIS_ENGINE_BATCH_SIZE="1", JARVIS_ENGINE_MAX_QUEUE="1")

    async def one(client, i: int):
        try:
            await client.chat.completions.create(
                model="", messages=[{"role": "user", "content": f"Say the number {i}."}], max_tokens=24,
                temperature=0, extra_body=NO_CACHE)
            return "ok"
        except openai.RateLimitError as e:
            return e

    async def main(s):
        async with openai.AsyncOpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=120) as client:
            return await asyncio.gather(*(one(client, i) for i in range(5)))

    with ServerThread(settings) as s:
        results = asyncio.run(main(s))
    rejected = [r for r in results if r != "ok"]
    assert results.count("ok") >= 1 and rejected  # one slot + one queued place for five requests
    for e in rejected:
        assert e.status_code == 429 and e.code == "queue_full"
        assert int(e.response.headers["Retry-After"]) >= 1


def test_rate_limit_is_429_with_retry_after_and_counted(tmp_path):
    settings = make_settings(tmp_path, JARVIS_SERVER_RATE_LIMIT_RPS="0.5", JARVIS_SERVER_RATE_LIMIT_BURST="2")
    with ServerThread(settings, preload=False) as s, \
            openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0) as c:
        c.models.list()
        c.models.list()
        with pytest.raises(openai.RateLimitError) as e:
            c.models.list()
        assert e.value.code == "rate_limit_exceeded"
        assert int(e.value.response.headers["Retry-After"]) == 2  # one token per 2 s at 0.5 rps
        health = s.call(_get_json(s.url + "/health"))  # only /v1 is limited
        assert health["status"] == "ok"
        stats = s.call(_get_json(s.url + "/api/performance/stats"))
        assert stats["counters"]["http.rate_limited"] == 1


# ---- jarvis ask --server -------------------------------------------------------------------
def test_jarvis_ask_through_a_running_server(server, env, client):
    from tests.support.process import run_jarvis

    expected = ask(client, "What is 2+2?", max_tokens=12).choices[0].message.content
    out = run_jarvis(["ask", "--server", server.url, "--max-tokens", "12", "--temperature", "0", "--stats",
                      "What is 2+2?"], env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected.strip() and "tok/s" in out.stderr and "via http" in out.stderr
    out = run_jarvis(["ask", "--server", server.url, "--model", "nope", "hi"], env, timeout=120)
    assert out.returncode != 0 and "404" in out.stderr and "nope" in out.stderr


# ---- one record per request ----------------------------------------------------------------
def test_the_answer_s_figures_are_the_record_and_a_cache_hit_is_counted_once_everywhere(tmp_path):
    """The `jarvis` figures of an answer are the very record the RecordBus carried to telemetry;
    a cache hit is one hit in /api/performance/stats and in /metrics alike; a request that could
    not be cached (random sampling) is neither a hit nor a miss in either."""
    import json
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from jarvis.telemetry import RequestRecord

    with ServerThread(make_settings(tmp_path)) as s:
        seen: list[RequestRecord] = []
        s.runtime.bus.subscribe(lambda r: seen.append(r) if isinstance(r, RequestRecord) else None)
        with openai.OpenAI(base_url=s.base_url, api_key="unused", max_retries=0, timeout=120) as c:
            first = ask(c, "Name a fruit.", max_tokens=6)
            again = ask(c, "Name a fruit.", max_tokens=6)
            ask(c, "Name a fruit.", max_tokens=6, temperature=0.9)  # random seed: never looked up
        with urllib.request.urlopen(s.url + "/api/performance/stats") as resp:
            stats = json.load(resp)
        with urllib.request.urlopen(s.url + "/metrics") as resp:
            families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}

    assert [(r.cache, r.source, r.backend) for r in seen] == [("miss", "api", "local"), ("hit", "api", "local"),
                                                            ("off", "api", "local")]
    assert first.model_extra["jarvis"] == seen[0].figures() and again.model_extra["jarvis"] == seen[1].figures()
    assert again.model_extra["jarvis"]["cache_hit"] and again.model_extra["jarvis"]["request_id"] != \
        first.model_extra["jarvis"]["request_id"]
    metric = {name: next(x.value for x in families[name].samples if x.name == f"{name}_total")
              for name in ("jarvis_cache_hits", "jarvis_cache_misses")}
    assert (stats["cache"]["hits"], stats["cache"]["misses"]) == (1, 1)
    assert (metric["jarvis_cache_hits"], metric["jarvis_cache_misses"]) == (1, 1)
    # Token gaps come from the records: one per token after the first, none for the replayed hit.
    itl = next(x.value for x in families["jarvis_inter_token_latency_seconds"].samples
               if x.name == "jarvis_inter_token_latency_seconds_count")
    assert itl == sum(len(r.inter_token_ms) for r in seen) and seen[1].inter_token_ms == ()


# ---- the stream's bytes ------------------------------------------------------------------------
@pytest.mark.parametrize("chat", [True, False])
@pytest.mark.parametrize("text", ["Hello", " world", 'a "quoted" \\ back\\slash', "line\nbreak\ttab",
                                  "héllo – 日本語 🦉", "\x00\x1f", ""])
def test_a_pre_encoded_text_event_is_the_same_bytes_as_the_encoded_piece(chat, text):
    from jarvis.http.openai_routes import _Shape
    from jarvis.http.sse import encode

    shape = _Shape(chat, 'model "with" quotes \\ é')
    assert shape.text_event(text) == encode(shape.piece(text))
    assert shape.text_event(text) == encode(shape.piece(text))  # the cached parts, second time round


def test_a_raw_stream_has_the_role_every_piece_in_order_the_finish_usage_and_done_last(server, client):
    """The SSE body as bytes: what the pre-encoded pieces and the one last write make of it."""
    question = "Name three colours."
    whole = ask(client, question, max_tokens=24, extra_body=NO_CACHE).choices[0].message.content

    async def raw():
        async with aiohttp.ClientSession() as session:
            body = {"model": "", "messages": [{"role": "user", "content": question}], "max_tokens": 24,
                    "temperature": 0, "stream": True, "stream_options": {"include_usage": True}, "cache": False}
            async with session.post(server.base_url + "/chat/completions", json=body) as resp:
                return await resp.read()

    data = asyncio.run(raw())
    assert data.endswith(b"data: [DONE]\n\n") and data.count(b"[DONE]") == 1
    import json as _json
    events = [_json.loads(block[6:]) for block in data.split(b"\n\n") if block.startswith(b"data: {")]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = [e["choices"][0]["delta"].get("content") for e in events[1:-2]]
    assert all(pieces) and "".join(pieces) == whole
    assert events[-2]["choices"][0]["finish_reason"] in ("stop", "length") and "jarvis" in events[-2]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    assert len({e["id"] for e in events}) == 1
