"""How many tokens a request's prompt is, as the model that would answer it reads it (its chat
template and the request's tools included), without generating anything: the catalog lookup, the
lease (a local model loads if it must: counting needs its tokenizer), the backend's `count_tokens`
(a remote's is an estimate, see jarvis.remote.backend)."""

from __future__ import annotations

from jarvis.backends import require
from jarvis.request import ChatRequest, resolve_timeout


async def count_tokens(assistant, request: ChatRequest) -> int:
    """`assistant` is a jarvis.assistant.Assistant."""
    from jarvis.assistant import needed_capabilities

    request.validate()
    await assistant.backends.prepare(request.model or "(default)")
    info = await assistant.catalog.lookup(request.model, assistant.settings.general.default_model)
    timeout = resolve_timeout(request.timeout_s, assistant.settings.engine.request_timeout_s)
    async with assistant.backends.lease(info, timeout) as lease:
        require(lease.backend, needed_capabilities(request), info.name)
        return await lease.backend.count_tokens(request)
