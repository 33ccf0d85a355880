"""What a request may ask for besides sampling: a grammar that constrains its output, and the
log-probabilities of the tokens it generates. Plain data, attached to ChatRequest.options; a
request that asks for none of it costs the engine nothing extra."""

from __future__ import annotations

from dataclasses import dataclass

from jarvis.errors import InvalidRequest

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

    def validate(self) -> None:
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidRequest(f"top_logprobs = {self.top_logprobs} must be between 0 and {MAX_TOP_LOGPROBS}.",
                                 field="top_logprobs")


NO_OPTIONS = RequestOptions()


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, bytes and log-probability, and the most likely alternatives
    at that position as (text, bytes, logprob), best first."""

    token: str
    bytes: bytes
    logprob: float
    top: tuple[tuple[str, bytes, float], ...] = ()
