"""The one place that knows which backend source serves which model.

Sources are found by key: a catalog model's `served_by` names its source ("local" for this
computer's llama.cpp engines, a remote's NAME for its server). Nothing else in JARVIS asks what
kind a model is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncContextManager

from jarvis.backends.base import Capability, Lease, ModelSource
from jarvis.errors import JarvisError

if TYPE_CHECKING:
    from jarvis.catalog import Catalog, ModelInfo
    from jarvis.telemetry import RecordBus


class BackendRegistry:
    def __init__(self, sources: list[ModelSource]) -> None:
        self._sources: dict[str, ModelSource] = {}
        for source in sources:
            if source.served_by in self._sources:
                raise ValueError(f"two backend sources are called {source.served_by!r}")
            self._sources[source.served_by] = source

    @classmethod
    def from_settings(cls, settings, catalog: "Catalog", bus: "RecordBus", *, local: ModelSource) -> "BackendRegistry":
        """This computer's models, then every source the settings configure."""
        from jarvis.remote import sources_from_settings  # the openai client loads only when a remote is used

        return cls([local, *sources_from_settings(settings, catalog, bus)])

    def sources(self) -> list[ModelSource]:
        return list(self._sources.values())

    def get(self, served_by: str) -> ModelSource:
        """A source by its key (a remote's NAME, "local")."""
        return self._sources[served_by]

    def source(self, info: "ModelInfo") -> ModelSource:
        return self._sources[info.served_by]

    # ---- a request's way through --------------------------------------------------------
    async def prepare(self, name: str) -> None:
        """Before a catalog lookup: a source that publishes its models (a remote's first probe)
        makes sure `name` can be found, or fails fast (a server that is down: 503)."""
        for source in self._sources.values():
            await source.prepare(name)

    def lease(self, info: "ModelInfo", timeout_s: float | None = None) -> AsyncContextManager[Lease]:
        return self.source(info).lease(info, timeout_s)

    async def warm(self, info: "ModelInfo") -> None:
        await self.source(info).warm(info)

    def capabilities(self, info: "ModelInfo") -> frozenset[Capability]:
        return self.source(info).capabilities

    def context_length(self, info: "ModelInfo") -> int:
        """The tokens a request to it may use (prompt and reply), as its source serves it; 0 = unknown."""
        return self.source(info).context_length(info)

    def state(self, info: "ModelInfo") -> str:
        """What the model picker says of it: loaded, loading, not loaded, unreadable, reachable, ..."""
        return self.source(info).state(info)

    # ---- life cycle and status ----------------------------------------------------------
    def start(self) -> None:
        for source in self._sources.values():
            source.start()

    async def close(self) -> None:
        errors = []
        for source in self._sources.values():
            try:
                await source.close()
            except (JarvisError, OSError) as e:  # one source failing to close must not keep the others open
                errors.append(e)
        if errors:
            raise errors[0]

    def status(self) -> list[dict]:
        """Every serving backend's state (servers with their replicas), for the monitor and the stats JSON."""
        return [entry for source in self._sources.values() for entry in source.status()]
