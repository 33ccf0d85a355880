"""The backend seam: the registry routes by the source a model names, capabilities decide what a
model may be asked, and models are typed by source behind one face."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from jarvis.backends import BackendRegistry, Capability, Lease, require
from jarvis.catalog import Catalog, LocalModel, RemoteModel
from jarvis.errors import InvalidRequest


class _Source:
    """A source that only says what was asked of it: the registry's routing, observed."""

    def __init__(self, served_by: str) -> None:
        self.served_by = served_by
        self.calls: list[tuple[str, str]] = []

    async def prepare(self, name: str) -> None:
        self.calls.append(("prepare", name))

    @contextlib.asynccontextmanager
    async def lease(self, info, timeout_s=None):
        self.calls.append(("lease", info.name))
        yield Lease(backend=self, warm_start=True, load_ms=0.0)

    async def warm(self, info) -> None:
        self.calls.append(("warm", info.name))

    def state(self, info) -> str:
        return f"state of {info.name} at {self.served_by}"

    def start(self) -> None:
        self.calls.append(("start", ""))

    async def close(self) -> None:
        self.calls.append(("close", ""))

    def status(self) -> list[dict]:
        return [{"name": self.served_by}]


def test_the_registry_routes_each_model_to_the_source_it_names():
    local, gpu = _Source("local"), _Source("gpu")
    registry = BackendRegistry([local, gpu])
    file = LocalModel(name="smol", source="bundled", path=Path("/m/smol.gguf"), size_bytes=1)
    remote = RemoteModel(name="gpu/big", source="remote gpu", served_by="gpu", upstream_id="big",
                         base_url="http://gpu:8000/v1")

    async def body():
        await registry.prepare("gpu/big")  # every source may get ready for a name
        async with registry.lease(remote) as lease:
            assert lease.backend is gpu
        async with registry.lease(file) as lease:
            assert lease.backend is local
        await registry.close()

    asyncio.run(body())
    assert gpu.calls == [("prepare", "gpu/big"), ("lease", "gpu/big"), ("close", "")]
    assert local.calls == [("prepare", "gpu/big"), ("lease", "smol"), ("close", "")]
    assert registry.state(remote) == "state of gpu/big at gpu"
    assert [s["name"] for s in registry.status()] == ["local", "gpu"]
    with pytest.raises(ValueError):
        BackendRegistry([local, _Source("local")])  # two sources may not share a key


def test_a_capability_the_backend_lacks_is_a_400_that_names_the_model():
    class Backend:
        served_by = "gpu"
        capabilities = frozenset({Capability.CHAT, Capability.COMPLETION})

    require(Backend(), {Capability.CHAT}, "gpu/big")  # what it has passes
    with pytest.raises(InvalidRequest) as e:
        require(Backend(), {Capability.CHAT, Capability.TOOLS, Capability.EMBEDDINGS}, "gpu/big")
    said = str(e.value)
    assert e.value.http_status == 400 and e.value.field == "model"
    assert "'gpu/big'" in said and "gpu" in said and "tool calls" in said and "embeddings" in said


def test_models_are_typed_by_source_behind_one_face(model_path):
    from jarvis.catalog import read_gguf_info

    file = read_gguf_info(model_path, "smol", "bundled")
    remote = RemoteModel(name="gpu/big", source="remote gpu", served_by="gpu", upstream_id="big",
                         base_url="http://gpu:8000/v1")
    assert (file.served_by, file.group, file.owner, file.location) == ("local", "This computer", "jarvis",
                                                                      str(model_path))
    assert (remote.group, remote.owner, remote.location) == ("Remote gpu", "gpu", "http://gpu:8000/v1")
    # a remote model has no placeholder file facts: its summary has none of them
    assert "size_bytes" in file.summary() and "size_bytes" not in remote.summary()
    assert not hasattr(remote, "path")
    assert file.identity != remote.identity


def test_a_source_s_published_models_join_the_files_and_replace_its_last_list(model_path, tmp_path):
    catalog = Catalog([tmp_path], include_bundled=True)
    catalog.rescan()
    first = RemoteModel(name="gpu/a", source="remote gpu", served_by="gpu", upstream_id="a", base_url="http://g/v1")
    second = RemoteModel(name="gpu/b", source="remote gpu", served_by="gpu", upstream_id="b", base_url="http://g/v1")
    catalog.publish("gpu", [first])
    catalog.publish("gpu", [second])
    names = [m.name for m in catalog.snapshot().models]
    assert "gpu/b" in names and "gpu/a" not in names and any(m.served_by == "local" for m in catalog.snapshot().models)
