"""Health probes: GET /v1/models on every replica, at start and every `health_interval_s`.

Async I/O on the loop (the openai client; nothing blocks). A replica that answers is up, with its
round trip and model ids; one that does not is marked down (see replicas.py), and requests for
its remote fail fast with a 503 that names it and its last error until a probe succeeds again.
A replica's model ids are published (the `publish` callback: into the catalog) before it is marked
up, with no await in between: nobody on the loop sees a healthy replica whose models are not listed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from jarvis.remote.replicas import Replica

log = logging.getLogger("jarvis.remote.health")
PROBE_TIMEOUT_S = 5.0


async def probe(backend, replica: Replica, publish: Callable[[], None]) -> bool:
    import openai

    client = backend.client(replica)
    t0 = time.perf_counter()
    try:
        page = await client.models.list(timeout=min(PROBE_TIMEOUT_S, backend.settings.timeout_s))
    except openai.APIStatusError as e:
        replica.checked_at = time.time()
        if e.status_code in (401, 403):  # it answers; the key is what is wrong: requests say so
            replica.succeeded((time.perf_counter() - t0) * 1000)
            replica.extra["refused"] = e.status_code  # requests say so: backend.check_key()
            return True
        replica.failed(f"HTTP {e.status_code} from {replica.url}/models")
        return False
    except (openai.APIError, OSError) as e:
        replica.checked_at = time.time()
        cause = e.__cause__ or e
        replica.failed(f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__)
        log.info("remote %s: probe of %s failed: %s", backend.name, replica.url, replica.last_error)
        return False
    replica.checked_at = time.time()
    replica.extra.pop("refused", None)
    replica.model_ids = tuple(m.id for m in page.data)
    replica.context_lengths = {m.id: n for m in page.data if (n := listed_context(m.model_extra or {}))}
    publish()  # its models listed first, then it counts as up
    replica.succeeded((time.perf_counter() - t0) * 1000)
    return True


def listed_context(entry: dict) -> int:
    """A model's context length as servers list it: JARVIS and LM Studio, vLLM, llama-server's meta."""
    for value in (entry.get("context_length"), entry.get("max_context_length"), entry.get("max_model_len"),
                  (entry.get("meta") or {}).get("n_ctx_train") if isinstance(entry.get("meta"), dict) else None):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


async def probe_all(backend, publish: Callable[[], None]) -> None:
    """Probe every replica at once; `publish` runs as each one that answers has its new listing."""
    await asyncio.gather(*(probe(backend, r, publish) for r in backend.replicas))
