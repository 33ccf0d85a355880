"""/v1/models entries carry what agent clients and chat front ends read, for local and remote
models: OpenAI's four fields (Codex CLI reads `id`), Open WebUI's `name`, the context length by
LM Studio's, vLLM's and JARVIS's names, a `capabilities` list from what the backend declares, and
llama-server's `meta`. The remote here is a second JARVIS on loopback, so the downstream listing
shows the context length its upstream listed."""

from __future__ import annotations

import openai
import pytest

from bench.support.server import ServerThread
from bench.support.settings import make_settings
from jarvis.backends.base import Capability
from jarvis.catalog.model_info import LocalModel
from jarvis.http.model_entry import capability_names
from tests.support.remote_servers import with_remote

OPENAI_FIELDS = {"id", "object", "created", "owned_by"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with ServerThread(make_settings(tmp_path_factory.mktemp("upstream")), preload=False) as upstream:
        settings = with_remote(make_settings(tmp_path_factory.mktemp("downstream")), "up", upstream.base_url,
                               health_interval_s=3600)
        with ServerThread(settings, preload=False) as downstream:
            downstream.call(downstream.runtime.assistant.backends.get("up").ensure_probed())
            yield upstream, downstream


def listing(server) -> dict[str, dict]:
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as c:
        return {m.id: m.model_dump() for m in c.models.list().data}


def test_a_local_model_lists_its_context_capabilities_and_facts(servers):
    upstream, _ = servers
    entry = listing(upstream)[upstream.model]
    assert OPENAI_FIELDS <= set(entry) and entry["object"] == "model" and entry["owned_by"] == "jarvis"
    assert entry["created"] > 0 and entry["name"] == upstream.model and entry["type"] == "llm"
    served = upstream.settings.engine.context_length  # a slot's size, within the trained length
    assert entry["context_length"] == entry["max_context_length"] == entry["max_model_len"] == served
    assert entry["meta"]["n_ctx_train"] >= served and entry["meta"]["size"] > 0 and entry["meta"]["n_params"] > 0
    assert {"chat", "completion", "tools", "grammar", "logprobs", "embeddings"} <= set(entry["capabilities"])
    assert "speculation" not in entry["capabilities"] and "reasoning" not in entry["capabilities"]
    with openai.OpenAI(base_url=upstream.base_url, api_key="unused", max_retries=0) as c:
        assert c.models.retrieve(upstream.model).model_dump()["context_length"] == served


def test_a_remote_model_lists_what_its_server_listed(servers):
    upstream, downstream = servers
    models = listing(downstream)
    remote = models[f"up/{upstream.model}"]
    assert OPENAI_FIELDS <= set(remote) and remote["owned_by"] == "up" and remote["name"] == f"up/{upstream.model}"
    assert remote["context_length"] == upstream.settings.engine.context_length  # read from the upstream's listing
    assert {"chat", "tools", "embeddings"} <= set(remote["capabilities"]) and remote["meta"] == {}
    assert models[downstream.model]["owned_by"] == "jarvis"  # its own local model beside it


def test_capabilities_say_embeddings_only_for_an_encoder_and_reasoning_for_a_thinking_template(tmp_path):
    every = frozenset(Capability)
    thinker = LocalModel(name="q", source="models/", path=tmp_path / "q.gguf", size_bytes=1,
                         chat_template="{{ '<think>\\n' }}{{ messages }}")
    encoder = LocalModel(name="e", source="models/", path=tmp_path / "e.gguf", size_bytes=1, embedding=True)
    assert capability_names(thinker, every)[-1] == "reasoning" and "chat" in capability_names(thinker, every)
    assert capability_names(encoder, every) == ["embeddings"]
