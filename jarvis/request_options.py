"""What a request may ask for besides sampling: its tools, a response format (structured
output), a grammar that constrains its output, and the log-probabilities of the tokens it
generates, and how many tokens a reasoning model may spend thinking. Plain data, attached to ChatRequest.options; a request that asks for none of it costs
the engine nothing extra.

Tools and the response format are declarative, so each backend serves them its own way: the local
llama.cpp backend compiles them to a grammar (jarvis.backends.local); a remote server gets them as
they are. `grammar` is for callers that hold a GBNF grammar themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jarvis.errors import InvalidRequest

if TYPE_CHECKING:
    from jarvis.structured import ResponseFormat
    from jarvis.tools.plan import ToolPlan

MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class Grammar:
    """A GBNF grammar the reply must follow."""

    gbnf: str
    label: str  # what the desktop's stats line says about the answer: "JSON" or "tool call"
    # Lazy: free text until the generated text matches one of these regexes (llama.cpp matches the
    # whole text so far; the first group marks where the grammar starts), constrained from there.
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestOptions:
    grammar: Grammar | None = None
    logprobs: bool = False
    top_logprobs: int = 0  # alternatives reported per token, 0-20
    tools: "ToolPlan | None" = None  # the request's tools and what the model may or must do with them
    response_format: "ResponseFormat | None" = None  # JSON object / JSON schema the answer must follow
    # Most tokens a reasoning model may think (inside `<think>`) before `</think>` ends it; None = no
    # limit, 0 = none. The local engine enforces it (jarvis.engine.thinking); a remote server gets
    # `reasoning_effort` (the effort asked for, or the smallest whose budget covers this one).
    reasoning_budget: int | None = None
    reasoning_effort: str | None = None  # the effort the client named, when it named one

    @property
    def shaped(self) -> bool:
        """The answer must follow a grammar or a JSON format (a backend needs Capability.GRAMMAR)."""
        return self.grammar is not None or (self.response_format is not None and self.response_format.type != "text")

    @property
    def calls_tools(self) -> bool:
        """The model may (or must) call the request's tools (a backend needs Capability.TOOLS)."""
        return self.tools is not None and self.tools.active

    @property
    def structured(self) -> bool:
        """The answer is held to a shape (a grammar, a JSON format or tool calls): the one
        definition the cache (its TTL kind, no semantic match) and needed_capabilities share."""
        return self.shaped or self.calls_tools

    def validate(self) -> None:
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidRequest(f"top_logprobs = {self.top_logprobs} must be between 0 and {MAX_TOP_LOGPROBS}.",
                                 field="top_logprobs")
        if self.reasoning_budget is not None and self.reasoning_budget < 0:
            raise InvalidRequest(f"reasoning budget = {self.reasoning_budget} must be 0 or more tokens.",
                                 field="reasoning_budget")


NO_OPTIONS = RequestOptions()


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, bytes and log-probability, and the most likely alternatives
    at that position as (text, bytes, logprob), best first."""

    token: str
    bytes: bytes
    logprob: float
    top: tuple[tuple[str, bytes, float], ...] = ()
