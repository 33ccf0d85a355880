"""Request parsing and the rate limiter, without a model: fast."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jarvis.config import GenerationSettings
from jarvis.errors import InvalidRequest
from jarvis.http.openai_schema import chat_request, completion_request, field_path, parse_json
from jarvis.http.rate_limit import TokenBuckets
from jarvis.request import Priority

GEN = GenerationSettings()
USER = [{"role": "user", "content": "hi"}]


def test_fields_map_onto_the_chat_request():
    parsed, req = chat_request({"model": "m", "messages": [{"role": "developer", "content": "be brief"},
                                                           {"role": "user", "content": [{"type": "text", "text": "a"},
                                                                                        {"type": "text", "text": "b"}]}],
                                "max_tokens": 9, "max_completion_tokens": 7, "temperature": 0.2, "top_p": 0.5,
                                "seed": 3, "stop": "x", "presence_penalty": 0.5, "frequency_penalty": -0.5,
                                "top_k": 5, "priority": "high", "cache": False, "stream": True,
                                "stream_options": {"include_usage": True}, "tools": [], "user": "u"}, GEN)
    assert [(m.role, m.content) for m in req.messages] == [("system", "be brief"), ("user", "ab")]
    sp = req.sampling
    assert (sp.max_tokens, sp.temperature, sp.top_p, sp.seed, sp.stop) == (7, 0.2, 0.5, 3, ("x",))
    assert (sp.presence_penalty, sp.frequency_penalty, sp.top_k) == (0.5, -0.5, 5)
    assert req.model == "m" and req.priority == Priority.HIGH and req.use_cache is False
    assert parsed.stream and parsed.include_usage


def test_a_request_may_ask_for_every_token_or_its_own_stream_interval():
    """stream_interval_ms: 0 streams every token as it is made (llama-server's way); unset, the
    engine's setting decides (ChatRequest None); a value out of range names the field."""
    assert chat_request({"messages": USER, "stream_interval_ms": 0}, GEN)[1].stream_interval_ms == 0
    assert completion_request({"prompt": "a", "stream_interval_ms": 40}, GEN)[1].stream_interval_ms == 40
    assert chat_request({"messages": USER}, GEN)[1].stream_interval_ms is None
    for bad in (-1, 5000, "soon"):
        with pytest.raises(InvalidRequest) as e:
            chat_request({"messages": USER, "stream_interval_ms": bad}, GEN)
        assert e.value.field == "stream_interval_ms" and "stream_interval_ms" in str(e.value)


def test_a_reply_not_streamed_is_taken_whole_on_every_surface():
    """`stream` false (or absent) on chat and completions, Responses and Messages: the reader
    takes the reply in one piece (ChatRequest.whole_reply), so its engine text wakes nothing until
    the end; streamed, it is handed over as it is made."""
    from jarvis.http.anthropic.schema import MessagesBody
    from jarvis.http.anthropic.schema import chat_request as messages_request
    from jarvis.http.responses.schema import ResponsesBody
    from jarvis.http.responses.schema import chat_request as responses_request
    from jarvis.sampling import SamplingParams

    def surfaces(stream: dict):
        yield chat_request({"messages": USER, **stream}, GEN)[1]
        yield completion_request({"prompt": "a", **stream}, GEN)[1]
        yield responses_request(ResponsesBody.parse({"input": "hi", **stream}), [], SamplingParams(), "reject")[0]
        yield messages_request(MessagesBody.parse({"max_tokens": 8, "messages": USER, **stream}), SamplingParams(),
                               "reject")[0]

    assert [r.whole_reply for r in surfaces({})] == [True] * 4
    assert [r.whole_reply for r in surfaces({"stream": False})] == [True] * 4
    assert [r.whole_reply for r in surfaces({"stream": True})] == [False] * 4


def test_defaults_come_from_settings_and_completions_default_to_16_tokens():
    _, req = chat_request({"messages": USER, "model": None, "temperature": None}, GEN)
    assert req.model == "" and req.sampling.temperature == GEN.temperature and req.sampling.max_tokens == GEN.max_tokens
    _, req = completion_request({"prompt": ["once upon"]}, GEN)
    assert req.prompt == "once upon" and req.sampling.max_tokens == 16


@pytest.mark.parametrize("body, field", [
    ({"messages": USER, "n": 3}, "n"),
    ({"messages": USER, "seed": -5}, "seed"),
    ({"messages": USER, "presence_penalty": 3}, "presence_penalty"),
    ({"messages": USER, "stream_options": {"include_usage": "maybe"}}, "stream_options.include_usage"),
    ({"messages": [{"role": "user"}]}, "messages"),  # no text at all
    ({"messages": [{"content": "x"}]}, "messages[0].role"),
    ({"messages": USER, "priority": "urgent"}, "priority"),
    ({"messages": "hi"}, "messages"),
])
def test_errors_name_the_field(body, field):
    with pytest.raises(InvalidRequest) as e:
        chat_request(body, GEN)
    assert e.value.field == field and field.split("[")[0].split(".")[0] in str(e.value)


def test_completions_take_one_prompt():
    with pytest.raises(InvalidRequest) as e:
        completion_request({"prompt": ["a", "b"]}, GEN)
    assert e.value.field == "prompt"
    with pytest.raises(InvalidRequest) as e:
        completion_request({"prompt": "   "}, GEN)
    assert e.value.field == "prompt"


def test_json_body_must_be_an_object():
    assert parse_json(b'{"a": 1}') == {"a": 1}
    for raw in (b"{", b"[]", b"\xff", b'"x"'):
        with pytest.raises(InvalidRequest):
            parse_json(raw)


def test_field_path_drops_union_tags():
    assert field_path(("messages", 0, "content", "list[TextPart]", 1, "type")) == "messages[0].content[1].type"
    assert field_path(("stop", "str")) == "stop"
    assert field_path(()) == "body"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_burst_then_rate():
    clock = Clock()
    buckets = TokenBuckets(rate=2, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: one token comes back in 1/rate s
    assert buckets.take("b") == 0  # per client
    clock.t += 0.5
    assert buckets.take("a") == 0


def test_token_buckets_are_bounded():
    buckets = TokenBuckets(rate=1, burst=1, max_clients=10, clock=Clock())
    for i in range(100):
        buckets.take(str(i))
    assert len(buckets) == 10


@given(st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=60),
       st.floats(min_value=0.1, max_value=20), st.integers(min_value=1, max_value=10))
def test_token_bucket_never_allows_more_than_burst_plus_rate_times_elapsed(gaps, rate, burst):
    clock = Clock()
    buckets = TokenBuckets(rate=rate, burst=burst, clock=clock)
    allowed = 0
    for gap in gaps:
        clock.t += gap
        allowed += buckets.take("k") == 0
    assert allowed <= burst + rate * sum(gaps) + 1e-9
