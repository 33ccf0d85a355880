"""One /v1/models entry: OpenAI's four fields, then what clients of local servers read.

OpenAI lists `id`, `object`, `created`, `owned_by`; Codex CLI (--oss) reads `data[].id`; Open WebUI
shows `name` when there is one. Local servers add the model's limits and abilities, each by its own
name, and clients read whichever their server gives: LM Studio `max_context_length`, `type` and
`capabilities`; vLLM `max_model_len`; llama-server a `meta` block (`n_ctx_train`, `n_params`,
`size`). JARVIS gives all of them, from the catalog's face of the model and what its backend
source declares (jarvis.backends), for local and remote models alike.
"""

from __future__ import annotations

from typing import Any

from jarvis.backends.base import Capability

# Properties of a backend that no request asks for by name.
_UNLISTED = {Capability.SPECULATION}


def capability_names(info, capabilities: frozenset[Capability]) -> list[str]:
    """What a client may ask of the model: an embedding model embeds only; a model whose template
    thinks says "reasoning" too."""
    if info.embedding:
        return [Capability.EMBEDDINGS.value]
    names = sorted(c.value for c in capabilities - _UNLISTED)
    return names + ["reasoning"] if info.reasoning else names


def model_entry(info, capabilities: frozenset[Capability], context_length: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": info.name, "object": "model", "created": info.created,
                             "owned_by": info.owner,  # "jarvis", or a remote model's remote NAME
                             "name": info.name, "type": "embeddings" if info.embedding else "llm",
                             "capabilities": capability_names(info, capabilities), "meta": info.facts()}
    if context_length:  # the tokens a request may use, prompt and reply together
        entry.update(context_length=context_length, max_context_length=context_length, max_model_len=context_length)
    return entry
