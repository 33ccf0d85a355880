"""/v1/embeddings and logprobs through the REAL official `openai` client on the real bundled model."""

from __future__ import annotations

import base64
import math

import numpy as np
import openai
import pytest
from llama_cpp import Llama

from bench.support.server import ServerThread
from bench.support.settings import make_settings

NO_CACHE = {"cache": False}
GREEDY = {"temperature": 0, "extra_body": {"repeat_penalty": 1.0, "cache": False}}  # greedy on the raw logits


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerThread(make_settings(tmp_path_factory.mktemp("embed-data"))) as s:
        # The embedder's thread lives as long as the model, like its worker: start it with the server.
        with openai.OpenAI(base_url=s.base_url, api_key="unused", max_retries=0) as c:
            c.embeddings.create(model="", input="warm-up")
        yield s


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300) as c:
        yield c


def vectors(response) -> np.ndarray:
    return np.array([d.embedding for d in response.data], dtype=np.float32)


# ---- embeddings ------------------------------------------------------------------------------
TEXTS = ["The cat sat on the mat.", "Quantum computers use qubits.", "I like green tea in the morning."]


def test_embeddings_shape_normalised_deterministic(client, server):
    first = client.embeddings.create(model="", input=TEXTS)
    assert first.object == "list" and first.model == server.model
    assert [d.index for d in first.data] == [0, 1, 2] and all(d.object == "embedding" for d in first.data)
    got = vectors(first)
    assert got.shape == (3, 576)  # SmolLM2-135M's hidden size
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert first.usage.prompt_tokens == first.usage.total_tokens > 3 * 5
    again = vectors(client.embeddings.create(model="", input=TEXTS))  # the same batch shape: the same floats
    assert np.array_equal(got, again)
    assert not np.allclose(got[0], got[1])


def test_a_batch_equals_the_single_requests(client):
    batch = vectors(client.embeddings.create(model="", input=TEXTS))
    singles = np.array([vectors(client.embeddings.create(model="", input=t))[0] for t in TEXTS])
    # Different batch shapes may round differently: equal up to float noise, not bit for bit.
    assert np.allclose(batch, singles, atol=1e-3)
    assert (batch * singles).sum(axis=1).min() > 0.9999


def test_base64_decodes_to_the_same_floats(client):
    floats = vectors(client.embeddings.create(model="", input=TEXTS[:2]))
    raw = client.embeddings.with_raw_response.create(model="", input=TEXTS[:2], encoding_format="base64")
    data = raw.http_response.json()["data"]
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data])
    assert np.array_equal(decoded, floats)
    # The client's own default asks for base64 and decodes it itself.
    assert np.array_equal(vectors(client.embeddings.create(model="", input=TEXTS[:2])), floats)


def test_token_arrays_and_dimensions(client, server, model_path):
    # The served model's vocabulary, read by llama-cpp-python itself (vocabulary only, no weights).
    vocab = Llama(str(model_path), vocab_only=True, verbose=False)
    try:
        ids = vocab.tokenize(b"The cat sat on the mat.", add_bos=False)
    finally:
        vocab.close()
    by_ids = client.embeddings.create(model="", input=[ids])
    assert len(by_ids.data[0].embedding) == 576 and by_ids.usage.prompt_tokens == len(ids)
    assert len(client.embeddings.create(model="", input=ids, dimensions=576).data) == 1  # one flat array


@pytest.mark.parametrize("body, param", [
    ({"input": []}, "input"),
    ({"input": ""}, "input[0]"),
    ({"input": "hello", "dimensions": 64}, "dimensions"),
    ({"input": [[10**8]]}, "input[0]"),
    ({"input": [1.5]}, "input[0]"),
])
def test_bad_embedding_requests_are_400s_naming_the_field(client, body, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.post("/embeddings", body={"model": "", **body}, cast_to=object)
    assert e.value.status_code == 400 and e.value.body["param"] == param, e.value.body


# ---- logprobs --------------------------------------------------------------------------------
def test_chat_logprobs_greedy_picks_the_top_and_tokens_spell_the_answer(client):
    r = client.chat.completions.create(model="", messages=[{"role": "user", "content": "Name three colors."}],
                                       max_tokens=12, logprobs=True, top_logprobs=5, **GREEDY)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert b"".join(bytes(t.bytes) for t in content).decode() == r.choices[0].message.content
    for t in content:
        assert len(t.top_logprobs) == 5
        tops = [a.logprob for a in t.top_logprobs]
        assert tops == sorted(tops, reverse=True) and tops[0] <= 0
        assert t.top_logprobs[0].token == t.token and t.logprob == tops[0]  # greedy = the most likely token
        assert sum(math.exp(lp) for lp in tops) <= 1 + 1e-6


def test_streamed_logprobs_equal_the_non_streamed_ones(client):
    kw = dict(model="", messages=[{"role": "user", "content": "Say something about rain."}], max_tokens=10,
              logprobs=True, top_logprobs=2, **GREEDY)
    whole = client.chat.completions.create(**kw).choices[0].logprobs.content
    streamed = [t for c in client.chat.completions.create(stream=True, **kw)
                if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in whole]


def test_without_logprobs_there_are_none(client):
    r = client.chat.completions.create(model="", messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                       **GREEDY)
    assert r.choices[0].logprobs is None


def test_completion_logprobs_in_the_legacy_shape(client):
    r = client.completions.create(model="", prompt="1, 2, 3, 4,", max_tokens=6, logprobs=3, temperature=0,
                                  extra_body={"repeat_penalty": 1.0, "cache": False})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 6
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(6)]
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3 and max(top.values()) == logprob and top[token] == logprob


@pytest.mark.parametrize("kw, param", [
    ({"logprobs": True, "top_logprobs": 50}, "top_logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
])
def test_bad_logprobs_are_400s(client, kw, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="", messages=[{"role": "user", "content": "Hi"}], **kw)
    assert e.value.body["param"] == param
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="", prompt="Hi", logprobs=21)
    assert e.value.body["param"] == "logprobs"
