"""What a cached reply is keyed on, what kind of reply it is (for its TTL), and the scope a
semantic match must share.

The exact key covers everything that changes a reply: the model file (path, size, mtime), the
full message list or prompt, and every sampling parameter. A request with a random seed at a
temperature above 0 would not give the same reply twice, so it is never cached.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from jarvis.request import ChatRequest

KINDS = ("chat", "completion", "embeddings", "structured")


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()


def cache_key(request: ChatRequest, model_identity: tuple) -> str | None:
    """A stable digest of what determines the reply, or None when the reply is not repeatable."""
    sp = request.sampling
    if sp.temperature > 0 and sp.seed < 0:
        return None
    if request.options.logprobs:  # a replay has no logprobs to give
        return None
    if request.options.calls_tools:
        return None  # a reply that may call tools is an agent's step: never answered from a store
    fmt = request.options.response_format
    return _digest({
        "model": list(model_identity),
        "messages": [[m.role, m.content, m.tool_call_id, [c.as_dict() for c in m.tool_calls]]
                     for m in request.messages],
        "prompt": request.prompt,
        "sampling": sp.model_dump(),
        "truncate": request.truncate,
        "grammar": asdict(request.options.grammar) if request.options.grammar else None,
        "response_format": fmt.wire() if fmt is not None else None,
        "reasoning_budget": request.options.reasoning_budget,
    })


def disk_key(key: str, file_identity: str) -> str:
    """The L2's key: the L1's plus the model file's content identity (its header's hash), so a
    file replaced with the same name, size and mtime still never serves old answers."""
    return _digest([key, file_identity])


def kind_of(request: ChatRequest) -> str:
    """Which TTL a reply gets: structured (a grammar shaped it: JSON, tool calls), completion
    (a raw prompt) or chat."""
    if request.options.structured:
        return "structured"
    return "completion" if request.prompt is not None else "chat"


def semantic_text(request: ChatRequest) -> str | None:
    """The text the semantic level compares (the last user message), or None when the request may
    not be answered by a similar one: a raw prompt, a grammar (structured output, tools), logprobs,
    a request that opted out (`cache: "exact"`), or sampling that would not repeat itself."""
    sp = request.sampling
    if request.prompt is not None or not request.messages or request.messages[-1].role != "user":
        return None
    if request.options.structured or request.options.logprobs or not getattr(request, "semantic", True):
        return None
    if not (sp.temperature == 0 or sp.seed >= 0):
        return None
    text = request.messages[-1].content.strip()
    return text or None


def semantic_scope(request: ChatRequest, model_identity: tuple, file_identity: str) -> str:
    """Two prompts may share an answer only within one scope: the same model file, system prompt,
    earlier turns and sampling parameters."""
    return _digest({
        "model": list(model_identity), "file": file_identity,
        "before": [[m.role, m.content] for m in request.messages[:-1]],
        "sampling": request.sampling.model_dump(), "truncate": request.truncate,
        "reasoning_budget": request.options.reasoning_budget,
    })
