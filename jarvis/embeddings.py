"""Embeddings through a leased model, whatever serves it: the catalog lookup, the lease (a local
model cannot be evicted while its embedder works), the backend's `embed`, and one request record
(jarvis.record_builder)."""

from __future__ import annotations

import asyncio
import itertools
import time

from jarvis.backends import Capability, require
from jarvis.backends.base import Embeddings
from jarvis.errors import JarvisError
from jarvis.record_builder import build_record
from jarvis.request import Timings, resolve_timeout

_ids = itertools.count(1)


async def embed(assistant, model: str, inputs: list[str | list[int]], dimensions: int | None = None,
                source: str = "") -> tuple[str, Embeddings]:
    """(the model's catalog name, the embeddings). `assistant` is a jarvis.assistant.Assistant."""
    started = time.perf_counter()
    name, served_by, status, error_kind, tokens = model or "(default)", "local", "ok", "", 0
    try:
        await assistant.backends.prepare(name)
        info = await assistant.catalog.lookup(model, assistant.settings.general.default_model)
        name, served_by = info.name, info.served_by
        timeout = resolve_timeout(None, assistant.settings.engine.request_timeout_s)
        async with assistant.backends.lease(info, timeout) as lease:
            require(lease.backend, {Capability.EMBEDDINGS}, name)
            result = await lease.backend.embed(inputs, dimensions)
            tokens = result.prompt_tokens
            return name, result
    except asyncio.CancelledError:
        status, error_kind = "cancelled", "RequestCancelled"
        raise
    except JarvisError as e:
        status, error_kind = "error", type(e).__name__
        raise
    finally:
        assistant.bus.emit(build_record(request_id=f"emb-{next(_ids)}", model=name, operation="embeddings",
                                        source=source, served_by=served_by, started=started, status=status,
                                        error_kind=error_kind, timings=Timings(finish_reason="", prompt_tokens=tokens)))
