"""What a front end asks for and what it gets back: plain data, shared by every layer."""

from __future__ import annotations

import enum
import itertools
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from jarvis.errors import InvalidRequest
from jarvis.request_options import NO_OPTIONS, RequestOptions, TokenLogprob

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
_ids = itertools.count(1)


class Priority(enum.IntEnum):
    """Lower value runs first."""

    HIGH = 0
    NORMAL = 1
    LOW = 2

    @classmethod
    def parse(cls, value: "Priority | str | int") -> "Priority":
        if isinstance(value, Priority):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise InvalidRequest(f"priority {value!r} is not one of high, normal, low", field="priority") from None
        return cls(value)


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 512
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1
    stop: tuple[str, ...] = ()

    def validate(self, context_length: int | None = None) -> None:
        checks = [
            ("max_tokens", self.max_tokens >= 1, "must be at least 1"),
            ("temperature", 0 <= self.temperature <= 5, "must be between 0 and 5"),
            ("top_k", self.top_k >= 0, "must be 0 (off) or more"),
            ("top_p", 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("min_p", 0 <= self.min_p <= 1, "must be in [0, 1]"),
            ("repeat_penalty", 0 < self.repeat_penalty <= 5, "must be in (0, 5]"),
            ("presence_penalty", -2 <= self.presence_penalty <= 2, "must be between -2 and 2"),
            ("frequency_penalty", -2 <= self.frequency_penalty <= 2, "must be between -2 and 2"),
            ("seed", -1 <= self.seed < 2**32, "must be -1 (random) or a 32-bit unsigned integer"),
            ("stop", len(self.stop) <= 8 and all(isinstance(s, str) and s for s in self.stop),
             "must be at most 8 non-empty strings"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise InvalidRequest(f"{name} = {getattr(self, name)!r} {rule}.", field=name)

    @classmethod
    def from_settings(cls, generation, **overrides) -> "SamplingParams":
        base = cls(
            max_tokens=generation.max_tokens, temperature=generation.temperature, top_k=generation.top_k,
            top_p=generation.top_p, min_p=generation.min_p, repeat_penalty=generation.repeat_penalty,
            seed=generation.seed,
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "stop" in clean:
            clean["stop"] = tuple(clean["stop"]) if not isinstance(clean["stop"], str) else (clean["stop"],)
        return replace(base, **clean)


@dataclass(frozen=True)
class ChatRequest:
    """One generation. `messages` is a chat; `prompt` (when set) is raw text, no template."""

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    model: str = ""  # catalog name; "" = the default model
    sampling: SamplingParams = SamplingParams()
    priority: Priority = Priority.NORMAL
    use_cache: bool = True  # False: bypass the response cache and replace the stored entry
    truncate: bool | None = None  # None = the engine.truncate setting
    timeout_s: float | None = None  # None = the engine.request_timeout_s setting
    request_id: str = field(default_factory=lambda: f"req-{next(_ids)}")
    operation: str = "chat"  # what the request log calls it: chat, completion, ask, ...
    options: RequestOptions = NO_OPTIONS  # grammar, logprobs (jarvis.request_options)

    def validate(self) -> None:
        if self.prompt is None and not self.messages:
            raise InvalidRequest("The request has no messages and no prompt.", field="messages")
        if self.prompt is not None and not self.prompt.strip():
            raise InvalidRequest("The prompt is empty.", field="prompt")
        if self.messages:
            for i, m in enumerate(self.messages):
                if m.role not in ("system", "user", "assistant"):
                    raise InvalidRequest(f"messages[{i}].role {m.role!r} is not system, user or assistant.",
                                         field=f"messages[{i}].role")
                if not isinstance(m.content, str):
                    raise InvalidRequest(f"messages[{i}].content must be text.", field=f"messages[{i}].content")
            if not any(m.role == "user" and m.content.strip() for m in self.messages):
                raise InvalidRequest("The conversation has no non-empty user message.", field="messages")
        self.sampling.validate()
        self.options.validate()

    @staticmethod
    def chat(user: str, system: str | None = None, history: list[Message] | None = None, **kw) -> "ChatRequest":
        msgs: list[Message] = []
        if system:
            msgs.append(Message("system", system))
        msgs.extend(history or [])
        msgs.append(Message("user", user))
        return ChatRequest(messages=tuple(msgs), **kw)


@dataclass
class Timings:
    """Figures every reply carries (all milliseconds unless the name says otherwise)."""

    queue_ms: float = 0.0
    model_load_ms: float = 0.0
    prefill_ms: float = 0.0
    ttft_ms: float = 0.0
    decode_tokens_per_s: float = 0.0
    total_ms: float = 0.0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    dropped_turns: int = 0
    finish_reason: FinishReason = "stop"
    cache_hit: bool = False
    warm_start: bool = True
    coalesced: bool = False
    model: str = ""
    constrained: str = ""  # the grammar's label ("JSON", "tool call") when the output was constrained
    # Gaps between streamed tokens, for the inter-token latency histogram; not part of the reply.
    inter_token_ms: tuple[float, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("inter_token_ms")
        return d


@dataclass
class Chunk:
    """A piece of a streamed reply. The last chunk has `done=True` and carries `timings`."""

    text: str
    done: bool = False
    timings: Timings | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None  # the tokens behind this chunk, when asked for


@dataclass
class Reply:
    text: str
    timings: Timings
