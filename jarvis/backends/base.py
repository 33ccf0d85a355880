"""What every backend is to the rest of JARVIS: a protocol and its declared capabilities."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncContextManager, AsyncIterator, Protocol

from jarvis.errors import InvalidRequest

if TYPE_CHECKING:
    from jarvis.catalog import ModelInfo
    from jarvis.request import ChatRequest, Chunk


class Capability(str, enum.Enum):
    """What a backend can do for a request. A request that needs one its backend lacks gets a
    clear 400 naming the model (`require`); one its backend has is served or passed through."""

    CHAT = "chat"  # messages through a chat template
    COMPLETION = "completion"  # raw prompt text
    GRAMMAR = "grammar"  # structured output (JSON schema / JSON object)
    TOOLS = "tools"  # function calling
    LOGPROBS = "logprobs"  # token log-probabilities
    EMBEDDINGS = "embeddings"  # vectors for text
    SPECULATION = "speculation"  # drafts tokens to verify (a property, never required)


class Backend(Protocol):
    """One model, ready to serve: what a lease hands out.

    `submit` queues a request and returns a handle at once (QueueFull / unavailable errors are
    raised here); `stream(handle)` yields Chunks, the last with `done=True` and the backend's
    neutral `Timings` (the Assistant builds the one RequestRecord from them); leaving the
    iterator early or `cancel(handle)` stops the work.
    """

    served_by: str  # its source's key, what RequestRecord.backend says: "local", a remote's NAME
    capabilities: frozenset[Capability]

    def submit(self, request: "ChatRequest") -> Any: ...

    def stream(self, handle: Any) -> AsyncIterator["Chunk"]: ...

    def cancel(self, handle: Any) -> None: ...

    async def count_tokens(self, request: "ChatRequest") -> int: ...  # the prompt's tokens; nothing generated

    async def embed(self, inputs: list[str | list[int]], dimensions: int | None = None) -> Any: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def busy(self) -> bool: ...


@dataclass
class Embeddings:
    """What `Backend.embed` returns: one float32 vector per input, unit length."""

    vectors: list  # of numpy float32 arrays
    prompt_tokens: int


@dataclass(frozen=True)
class Lease:
    """A model held for one request (it cannot be evicted meanwhile)."""

    backend: Backend
    warm_start: bool  # it was ready when the request came
    load_ms: float  # what this request waited for a load (0 when warm)


class ModelSource(Protocol):
    """A kind of backend as the registry sees it: which catalog models it serves and how.

    `served_by` is the value of `ModelInfo.served_by` for the models it serves (the registry looks
    it up; nobody tests it). The registry calls `prepare(name)` on every source before a catalog
    lookup (a remote's first probe publishes its models), then `lease(info)` on the one that
    serves the model.
    """

    served_by: str
    capabilities: frozenset[Capability]  # what the models it serves can do

    async def prepare(self, name: str) -> None: ...

    def context_length(self, info: "ModelInfo") -> int: ...  # the tokens a request may use; 0 = unknown

    def lease(self, info: "ModelInfo", timeout_s: float | None = None) -> AsyncContextManager[Lease]: ...

    async def warm(self, info: "ModelInfo") -> None: ...

    def state(self, info: "ModelInfo") -> str: ...

    def start(self) -> None: ...

    async def close(self) -> None: ...

    def status(self) -> list[dict]: ...


def require(backend: Backend, needed: set[Capability], model: str) -> None:
    """InvalidRequest (400) naming the model and what it cannot do, when `needed` is not covered."""
    missing = sorted(c.value for c in needed - backend.capabilities)
    if missing:
        words = {"grammar": "structured output", "tools": "tool calls", "logprobs": "logprobs",
                 "embeddings": "embeddings", "completion": "raw prompts (completions)", "chat": "chat"}
        said = ", ".join(words.get(m, m) for m in missing)
        raise InvalidRequest(f"{model!r} (served by {backend.served_by}) does not support {said}. Pick another "
                             f"model or leave that part out of the request.", field="model")
