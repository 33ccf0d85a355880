"""What a front end asks for and what it gets back: plain data, shared by every layer."""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import Literal

from jarvis.config import MAX_STREAM_INTERVAL_MS
from jarvis.errors import InvalidRequest
from jarvis.request_options import NO_OPTIONS, RequestOptions, TokenLogprob
from jarvis.sampling import SamplingParams
from jarvis.telemetry.records import NO_TOOLS, RequestRecord, ToolFigures

__all__ = ["Role", "ROLES", "Message", "Priority", "SamplingParams", "ChatRequest", "Chunk", "Reply",
           "RequestRecord", "Timings", "ToolCall", "resolve_timeout"]

# The one definition of who speaks in a chat; stored conversations use it too. "tool" carries a
# tool's result back to the model (it answers an assistant message's tool_calls).
Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")
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
class ToolCall:
    """A call of one of the request's tools, as the model made it: every API surface and every
    backend speaks this one shape (OpenAI's `tool_calls[i]`, Anthropic's `tool_use`)."""

    id: str
    name: str
    arguments: str  # a JSON object, as text

    def as_dict(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class Message:
    """One turn of a chat, as the model sees it (a stored one is conversations.StoredMessage).

    An assistant turn may carry the calls it made (`tool_calls`); a "tool" turn carries one
    call's result, `tool_call_id` naming the call it answers."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""


def resolve_timeout(requested: float | None, setting: float) -> float | None:
    """The one timeout rule: None = the engine.request_timeout_s setting; then 0 = no limit.

    Returns seconds, or None for no limit.
    """
    seconds = setting if requested is None else requested
    return seconds if seconds and seconds > 0 else None


@dataclass(frozen=True)
class ChatRequest:
    """One generation. `messages` is a chat; `prompt` (when set) is raw text, no template."""

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    model: str = ""  # catalog name; "" = the default model
    sampling: SamplingParams = SamplingParams()
    priority: Priority = Priority.NORMAL
    use_cache: bool = True  # False: bypass the response cache and replace the stored entry
    semantic: bool = True  # False: exact cache levels only, never a similar prompt's answer (`cache: "exact"`)
    truncate: bool | None = None  # None = the engine.truncate setting
    timeout_s: float | None = None  # see resolve_timeout: None = the setting, 0 = no limit
    stream_interval_ms: float | None = None  # text reaches the reader at most this often; None = the engine's setting
    # The reader takes the reply in one piece (a non-streamed API answer): the engine hands its text
    # over with the end instead of step by step, so nothing wakes the loop while it generates.
    whole_reply: bool = False
    request_id: str = field(default_factory=lambda: f"req-{next(_ids)}")
    operation: str = "chat"  # what the request log calls it: chat, completion, ask, ...
    source: str = ""  # which front end sent it: chat (desktop), api (HTTP), cli
    options: RequestOptions = NO_OPTIONS  # grammar, logprobs (jarvis.request_options)
    # Set by the tool loop: its turn so far, for the request's record (never part of the prompt or cache key).
    tool_figures: ToolFigures = NO_TOOLS

    def validate(self) -> None:
        if self.prompt is None and not self.messages:
            raise InvalidRequest("The request has no messages and no prompt.", field="messages")
        if self.prompt is not None and not self.prompt.strip():
            raise InvalidRequest("The prompt is empty.", field="prompt")
        if self.messages:
            calls_open = False  # a tool message answers the assistant message with tool_calls before it
            for i, m in enumerate(self.messages):
                if m.role not in ROLES:
                    raise InvalidRequest(f"messages[{i}].role {m.role!r} is not system, user, assistant or tool.",
                                         field=f"messages[{i}].role")
                if not isinstance(m.content, str):
                    raise InvalidRequest(f"messages[{i}].content must be text.", field=f"messages[{i}].content")
                if m.role == "tool":
                    if not calls_open:
                        raise InvalidRequest(f"messages[{i}].role: a tool message must follow an assistant message "
                                             "with tool_calls.", field=f"messages[{i}].role")
                    if not m.tool_call_id:
                        raise InvalidRequest(f"messages[{i}].tool_call_id is required in a tool message.",
                                             field=f"messages[{i}].tool_call_id")
                    continue
                calls_open = m.role == "assistant" and bool(m.tool_calls)
            if not any(m.role == "user" and m.content.strip() for m in self.messages):
                raise InvalidRequest("The conversation has no non-empty user message.", field="messages")
        if self.timeout_s is not None and not self.timeout_s >= 0:
            raise InvalidRequest(f"timeout_s = {self.timeout_s!r} must be 0 (no limit) or more seconds.",
                                 field="timeout_s")
        if self.stream_interval_ms is not None and not 0 <= self.stream_interval_ms <= MAX_STREAM_INTERVAL_MS:
            raise InvalidRequest(f"stream_interval_ms = {self.stream_interval_ms!r} must be between 0 (every token) "
                                 f"and {MAX_STREAM_INTERVAL_MS} ms.", field="stream_interval_ms")
        self.options.validate()



@dataclass(frozen=True)
class QueuePosition:
    """Where a request waiting for a slot stands: 1 = next in line. `eta_s`: about how long it
    waits, at the pace slots have been freeing up lately (None before that pace is known)."""

    position: int
    eta_s: float | None = None


@dataclass(frozen=True)
class Timings:
    """What a backend measured while producing one reply, in neutral terms. Instants are
    `time.perf_counter()` seconds (one clock for the whole process). A backend puts these on its
    last chunk; the Assistant turns them into the one RequestRecord (jarvis.record_builder)."""

    finish_reason: str = "stop"  # stop | length
    stop_sequence: str = ""  # the stop string that ended the reply (cut from its text); "" = none did
    submitted_at: float = 0.0  # the backend took the request
    admitted_at: float = 0.0  # it got a slot (or an upstream place); queue time ends here
    first_token_at: float = 0.0  # 0: no token was produced
    last_token_at: float = 0.0
    queue_position: int = 0  # place in line at submission (1 = next); 0 = a place was free
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # of those, reused from a previous request's KV cells
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # of those, spent thinking (inside `<think>`, the tags not counted)
    dropped_turns: int = 0
    inter_token_ms: tuple[float, ...] = ()
    constrained: str = ""  # the grammar's label when one shaped the output ("JSON", "tool call")
    server_timings: dict = field(default_factory=dict, compare=False)  # a remote server's own figures
    load_ms: float = 0.0  # set by the lease: what the request waited for a model load
    warm_start: bool = True  # set by the lease

    @property
    def queue_ms(self) -> float:
        return max(0.0, self.admitted_at - self.submitted_at) * 1000 if self.admitted_at else 0.0

    @property
    def prefill_ms(self) -> float:
        return max(0.0, self.first_token_at - self.admitted_at) * 1000 if self.first_token_at else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        decode_s = self.last_token_at - self.first_token_at
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 and self.completion_tokens > 1 else 0.0


@dataclass
class Chunk:
    """A piece of a streamed reply.

    From a backend, the last chunk has `done=True` and carries its `timings`; from the Assistant,
    it carries the request's `record` too. A chunk with `queue` set (and no text) says the request
    still waits for a slot, and where. `reasoning` is thinking text, apart from the answer's;
    `tool_calls` are the calls the model made, whole (parsed below any API surface)."""

    text: str
    done: bool = False
    record: RequestRecord | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None  # the tokens behind this chunk, when asked for
    queue: QueuePosition | None = None
    timings: Timings | None = None
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass
class Reply:
    text: str
    record: RequestRecord
