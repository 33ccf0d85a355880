"""One configured remote as a backend source (jarvis.backends.ModelSource): its server, its
models for the catalog, its probes and its status.

`start()` probes the remote at once and then every `health_interval_s`, and reads each replica's
/metrics every second. As each replica answers a probe, the remote's models are published into
the catalog as NAME/<model id>, before that replica counts as up (health.py): a request never finds
a healthy replica whose models the catalog does not list yet. A front end that never calls start()
(a one-shot `jarvis ask`) gets the first probe on its first request for one of the remote's models.
"""

from __future__ import annotations

import asyncio
import contextlib

from jarvis.backends.base import Lease
from jarvis.catalog import Catalog, RemoteModel
from jarvis.remote.backend import RemoteBackend, RemoteModelBackend
from jarvis.remote.health import probe_all
from jarvis.remote.settings import RemoteSettings
from jarvis.tasks import TaskSet
from jarvis.telemetry import RecordBus


class RemoteSource:
    capabilities = RemoteModelBackend.capabilities  # what its models can do (the /v1/models listing says)

    def __init__(self, name: str, settings: RemoteSettings, catalog: Catalog, bus: RecordBus, *,
                 max_queue: int = 64, request_timeout_s: float = 300):
        self.served_by = name
        self.catalog = catalog
        self.backend = RemoteBackend(name, settings, max_queue=max_queue, request_timeout_s=request_timeout_s, bus=bus)
        self._probed: asyncio.Future | None = None
        self._tasks = TaskSet()
        self.publish()  # an allow-list is known before the first probe

    # ---- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        from jarvis.remote.server_metrics import scrape_forever

        for coro in (self._watch(), scrape_forever(self.backend)):
            self._tasks.spawn(coro)

    async def _watch(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.backend.settings.health_interval_s)

    async def probe(self) -> None:
        """Probe every replica, publishing the models as each one answers (a replica that does not
        answer changes no listing); the first probe also releases those waiting for it."""
        if self._probed is None:
            self._probed = asyncio.get_running_loop().create_future()
        done = self._probed
        try:
            await probe_all(self.backend, self.publish)
        finally:  # whatever happened, nobody waits on the first probe forever
            if not done.done():
                done.set_result(None)

    async def ensure_probed(self) -> None:
        """Wait for the remote's first probe (run it here when nobody started one)."""
        if self._probed is None:
            await self.probe()
        else:
            await asyncio.shield(self._probed)

    async def close(self) -> None:
        await self._tasks.cancel_all()
        for replica in self.backend.replicas:
            for attr, close in (("client", "close"), ("http", "aclose")):
                handle = getattr(replica, attr)
                if handle is not None:
                    with contextlib.suppress(Exception):
                        await getattr(handle, close)()
                    setattr(replica, attr, None)

    # ---- the backend source face -------------------------------------------------------
    def owns(self, model_name: str) -> bool:
        prefix, sep, _ = (model_name or "").partition("/")
        return bool(sep) and prefix == self.served_by

    async def prepare(self, name: str) -> None:
        """Before a request for NAME/...: the first probe done; a remote that is down fails here,
        at once, with a 503 that names it (and a refused key says so)."""
        if self.owns(name):
            await self.ensure_probed()
            self.backend.check_reachable()
            self.backend.check_key()

    @contextlib.asynccontextmanager
    async def lease(self, info: RemoteModel, timeout_s: float | None = None):
        """Nothing to load, nothing to evict: the server's queue is where a request waits."""
        yield Lease(RemoteModelBackend(self.backend, info.name, info.upstream_id), True, 0.0)

    async def warm(self, info: RemoteModel) -> None:
        await self.ensure_probed()  # a remote model loads nothing here; its first probe is its warm-up

    def state(self, info: RemoteModel) -> str:
        return "remote" if self.backend.reachable else "unreachable"

    def context_length(self, info: RemoteModel) -> int:
        return info.context_length  # as the server listed it; 0 when it did not say

    def status(self) -> list[dict]:
        return [{**self.backend.status(), "kind": "server",
                 "models": [m.name for m in self.model_infos()]}]

    # ---- the catalog -------------------------------------------------------------------
    def model_infos(self) -> list[RemoteModel]:
        listed: list[str] = []
        for replica in self.backend.replicas:
            listed.extend(m for m in replica.model_ids if m not in listed)
        allowed = self.backend.settings.models
        ids = [m for m in listed if m in allowed] if allowed and listed else (allowed or listed)
        name, url = self.served_by, self.backend.settings.base_url
        contexts = {m: n for replica in self.backend.replicas for m, n in replica.context_lengths.items()}
        return [RemoteModel(name=f"{name}/{model_id}", source=f"remote {name}", served_by=name, upstream_id=model_id,
                            base_url=url, context_length=contexts.get(model_id, 0)) for model_id in ids]

    def publish(self) -> None:
        self.catalog.publish(self.served_by, self.model_infos())


def sources_from_settings(settings, catalog: Catalog, bus: RecordBus) -> list[RemoteSource]:
    """One source per [remotes.NAME] table (none when the settings name no remote)."""
    e = settings.engine
    return [RemoteSource(name, rs, catalog, bus, max_queue=e.max_queue, request_timeout_s=e.request_timeout_s)
            for name, rs in settings.remotes.items()]
