"""Every configured remote: its backend, its models for the catalog, its status for front ends.

The Assistant makes one `Remotes` when settings name any remote. `start()` probes each remote at
once and then every `health_interval_s`, and reads each replica's /metrics every second; after
every probe the remotes' models are published into the catalog as NAME/<model id>. A front end
that never calls start() (a one-shot `jarvis ask`) gets the first probe on its first request.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from jarvis.catalog import Catalog, ModelInfo
from jarvis.remote.backend import ModelBackend, RemoteBackend
from jarvis.remote.health import probe_all
from jarvis.remote.settings import RemoteSettings
from jarvis.telemetry import RecordBus


class Remotes:
    def __init__(self, remotes: dict[str, RemoteSettings], catalog: Catalog, bus: RecordBus, *,
                 max_queue: int = 64, request_timeout_s: float = 300):
        self.catalog = catalog
        self.backends = {name: RemoteBackend(name, rs, max_queue=max_queue, request_timeout_s=request_timeout_s,
                                             bus=bus) for name, rs in remotes.items()}
        self._probed: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()

    @classmethod
    def from_settings(cls, settings, catalog: Catalog, bus: RecordBus) -> "Remotes":
        e = settings.engine
        return cls(settings.remotes, catalog, bus, max_queue=e.max_queue, request_timeout_s=e.request_timeout_s)

    # ---- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        from jarvis.remote.server_metrics import scrape_forever

        loop = asyncio.get_running_loop()
        for backend in self.backends.values():
            for coro in (self._watch(backend), scrape_forever(backend)):
                task = loop.create_task(coro)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _watch(self, backend: RemoteBackend) -> None:
        while True:
            await self.probe(backend)
            await asyncio.sleep(backend.settings.health_interval_s)

    async def probe(self, backend: RemoteBackend) -> None:
        """Probe every replica, publish the models; the first probe also releases those waiting for it."""
        done = self._probed.setdefault(backend.name, asyncio.get_running_loop().create_future())
        try:
            await probe_all(backend)
            self.publish()
        finally:  # whatever happened, nobody waits on the first probe forever
            if not done.done():
                done.set_result(None)

    async def ensure_probed(self, backend: RemoteBackend) -> None:
        """Wait for the remote's first probe (run it here when nobody started one)."""
        done = self._probed.get(backend.name)
        if done is None:
            await self.probe(backend)
        else:
            await asyncio.shield(done)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for backend in self.backends.values():
            for replica in backend.replicas:
                for attr, close in (("client", "close"), ("http", "aclose")):
                    handle = getattr(replica, attr)
                    if handle is not None:
                        with contextlib.suppress(Exception):
                            await getattr(handle, close)()
                        setattr(replica, attr, None)

    # ---- requests ----------------------------------------------------------------------
    def match(self, model_name: str) -> RemoteBackend | None:
        """The remote a catalog name NAME/<model id> belongs to, if any."""
        prefix, sep, _ = (model_name or "").partition("/")
        return self.backends.get(prefix) if sep else None

    async def prepare(self, model_name: str) -> None:
        """Before a request for NAME/...: the remote's first probe done; a remote that is down fails
        here, at once, with a 503 that names it."""
        backend = self.match(model_name)
        if backend is not None:
            await self.ensure_probed(backend)
            backend.check_reachable()
            backend.check_key()

    def model_backend(self, info: ModelInfo) -> ModelBackend:
        return ModelBackend(self.backends[info.remote], info.name, info.remote_model, name=info.name)

    # ---- the catalog and front ends ----------------------------------------------------
    def model_infos(self) -> list[ModelInfo]:
        infos = []
        for name, backend in self.backends.items():
            listed: list[str] = []
            for replica in backend.replicas:
                listed.extend(m for m in replica.model_ids if m not in listed)
            allowed = backend.settings.models
            ids = [m for m in listed if m in allowed] if allowed and listed else (allowed or listed)
            for model_id in ids:
                infos.append(ModelInfo(name=f"{name}/{model_id}", path=Path(), size_bytes=0, source=f"remote {name}",
                                       remote=name, remote_model=model_id, remote_url=backend.settings.base_url))
        return infos

    def publish(self) -> None:
        self.catalog.set_remote_models(self.model_infos())

    def status(self) -> list[dict]:
        return [backend.status() for backend in self.backends.values()]
