"""A loaded llama.cpp engine as a Backend: this computer's way of serving tools and structured output.

The engine generates tokens; this adapter is what makes it a full backend. A model that only writes
text is told about tools in a system section and answers calls as `<tool_call>` blocks
(jarvis.tools.plan); a request's tools and response format are compiled here to the grammar that
forces well-formed output; on the way back the call blocks are cut out of the text and handed on as
`Chunk.tool_calls`, so no API surface parses model text.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, AsyncIterator

from jarvis.backends.base import Capability
from jarvis.errors import InvalidRequest
from jarvis.request import ChatRequest, Chunk
from jarvis.request_options import Grammar, RequestOptions
from jarvis.tools.plan import ContentFilter, ToolPlan

if TYPE_CHECKING:
    from jarvis.engine import Engine
    from jarvis.engine.sequence import SeqState

NO_TOOLS = ToolPlan((), "none", True)


def local_grammar(options: RequestOptions) -> Grammar | None:
    """The grammar a request's options come to: forced calls win over a response format; calls
    the model may make ("auto") switch a lazy grammar on only when no format is asked."""
    if options.grammar is not None:
        return options.grammar
    plan = options.tools if options.tools is not None and options.tools.active else None
    if plan is not None and plan.forced:
        return plan.grammar()
    if options.response_format is not None and (grammar := options.response_format.grammar()) is not None:
        return grammar
    return plan.grammar() if plan is not None else None


def prepared(request: ChatRequest) -> ChatRequest:
    """The request as the engine takes it: calls and results written as text, tools described in
    the system turn, the output's grammar compiled."""
    options = request.options
    messages = (options.tools or NO_TOOLS).render(request.messages) if request.messages else request.messages
    return replace(request, messages=messages, options=replace(options, grammar=local_grammar(options)))


@dataclass(eq=False)
class LocalHandle:
    seq: "SeqState"
    plan: ToolPlan | None  # the tools the model may call, when it may


class LocalBackend:
    served_by = "local"
    capabilities = frozenset(Capability)

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    def submit(self, request: ChatRequest) -> LocalHandle:
        plan = request.options.tools
        return LocalHandle(self.engine.submit(prepared(request)), plan if plan is not None and plan.active else None)

    def stream(self, handle: LocalHandle) -> AsyncIterator[Chunk]:
        if handle.plan is None:  # nothing to filter: the engine's own stream, no generator per token between
            return self.engine.stream(handle.seq)
        return self._calls_filtered(handle, ContentFilter(handle.plan))

    async def _calls_filtered(self, handle: LocalHandle, calls: ContentFilter) -> AsyncIterator[Chunk]:
        async for chunk in self.engine.stream(handle.seq):
            text = calls.feed(chunk.text)
            if chunk.done:
                tail, found = calls.finish()
                yield replace(chunk, text=text + tail, tool_calls=tuple(found))
            elif text or chunk.logprobs or chunk.queue is not None:
                yield replace(chunk, text=text)

    def cancel(self, handle: LocalHandle) -> None:
        self.engine.cancel(handle.seq)

    async def count_tokens(self, request: ChatRequest) -> int:
        return await asyncio.to_thread(self.engine.count_tokens, prepared(request))  # tools described, as sent

    async def embed(self, inputs: list[str | list[int]], dimensions: int | None = None):
        embedder = self.engine.embedder()
        if dimensions is not None and dimensions != embedder.dimensions:
            raise InvalidRequest(f"dimensions = {dimensions}: {self.engine.name} gives {embedder.dimensions}-dimensional "
                                 f"embeddings and cannot shorten them. Leave dimensions out or send "
                                 f"{embedder.dimensions}.", field="dimensions")
        return await asyncio.wrap_future(embedder.submit(inputs))

    @property
    def queue_depth(self) -> int:
        return self.engine.queue_depth

    @property
    def busy(self) -> bool:
        return self.engine.busy
