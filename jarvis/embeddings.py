"""Embeddings through a leased model: the catalog lookup, the lease (the model cannot be evicted
while its embedder works), the work on the embedder's own thread, and one request record."""

from __future__ import annotations

import asyncio
import time

from jarvis.engine.embedder import Embeddings
from jarvis.errors import InvalidRequest, JarvisError
from jarvis.request import resolve_timeout
from jarvis.telemetry import RequestRecord

_ids = iter(range(1, 2**62))


async def embed(assistant, model: str, inputs: list[str | list[int]], dimensions: int | None = None) -> tuple[str, Embeddings]:
    """(the model's catalog name, the embeddings). `assistant` is a jarvis.assistant.Assistant."""
    started = time.perf_counter()
    name, status, error_kind, tokens = model or "(default)", "ok", "", 0
    try:
        info = await assistant.catalog.lookup(model, assistant.settings.general.default_model)
        name = info.name
        timeout = resolve_timeout(None, assistant.settings.engine.request_timeout_s)
        async with assistant.manager.lease(info, timeout) as lease:
            embedder = lease.engine.embedder()
            if dimensions is not None and dimensions != embedder.dimensions:
                raise InvalidRequest(f"dimensions = {dimensions}: {name} gives {embedder.dimensions}-dimensional "
                                     f"embeddings and cannot shorten them. Leave dimensions out or send "
                                     f"{embedder.dimensions}.", field="dimensions")
            result = await asyncio.wrap_future(embedder.submit(inputs))
            tokens = result.prompt_tokens
            return name, result
    except asyncio.CancelledError:
        status, error_kind = "cancelled", "RequestCancelled"
        raise
    except JarvisError as e:
        status, error_kind = "error", type(e).__name__
        raise
    finally:
        assistant.bus.emit(RequestRecord(request_id=f"emb-{next(_ids)}", model=name, operation="embeddings",
                                         status=status, error_kind=error_kind,
                                         total_ms=(time.perf_counter() - started) * 1000, prompt_tokens=tokens))
