"""What a front end asks for and what it gets back: plain data, shared by every layer."""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import Literal

from jarvis.errors import InvalidRequest
from jarvis.request_options import NO_OPTIONS, RequestOptions, TokenLogprob
from jarvis.sampling import SamplingParams
from jarvis.telemetry.records import RequestRecord

__all__ = ["Role", "ROLES", "Message", "Priority", "SamplingParams", "ChatRequest", "Chunk", "Reply",
           "RequestRecord", "resolve_timeout"]

# The one definition of who speaks in a chat; stored conversations use it too.
Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
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
    """One turn of a chat, as the model sees it (a stored one is conversations.StoredMessage)."""

    role: Role
    content: str


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
    request_id: str = field(default_factory=lambda: f"req-{next(_ids)}")
    operation: str = "chat"  # what the request log calls it: chat, completion, ask, ...
    source: str = ""  # which front end sent it: chat (desktop), api (HTTP), cli
    options: RequestOptions = NO_OPTIONS  # grammar, logprobs (jarvis.request_options)

    def validate(self) -> None:
        if self.prompt is None and not self.messages:
            raise InvalidRequest("The request has no messages and no prompt.", field="messages")
        if self.prompt is not None and not self.prompt.strip():
            raise InvalidRequest("The prompt is empty.", field="prompt")
        if self.messages:
            for i, m in enumerate(self.messages):
                if m.role not in ROLES:
                    raise InvalidRequest(f"messages[{i}].role {m.role!r} is not system, user or assistant.",
                                         field=f"messages[{i}].role")
                if not isinstance(m.content, str):
                    raise InvalidRequest(f"messages[{i}].content must be text.", field=f"messages[{i}].content")
            if not any(m.role == "user" and m.content.strip() for m in self.messages):
                raise InvalidRequest("The conversation has no non-empty user message.", field="messages")
        if self.timeout_s is not None and not self.timeout_s >= 0:
            raise InvalidRequest(f"timeout_s = {self.timeout_s!r} must be 0 (no limit) or more seconds.",
                                 field="timeout_s")
        self.options.validate()

    @staticmethod
    def chat(user: str, system: str | None = None, history: list[Message] | None = None, **kw) -> "ChatRequest":
        msgs: list[Message] = []
        if system:
            msgs.append(Message("system", system))
        msgs.extend(history or [])
        msgs.append(Message("user", user))
        return ChatRequest(messages=tuple(msgs), **kw)


@dataclass(frozen=True)
class QueuePosition:
    """Where a request waiting for a slot stands: 1 = next in line. `eta_s`: about how long it
    waits, at the pace slots have been freeing up lately (None before that pace is known)."""

    position: int
    eta_s: float | None = None


@dataclass
class Chunk:
    """A piece of a streamed reply. The last chunk has `done=True` and carries the request's record.
    A chunk with `queue` set (and no text) says the request still waits for a slot, and where."""

    text: str
    done: bool = False
    record: RequestRecord | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None  # the tokens behind this chunk, when asked for
    queue: QueuePosition | None = None


@dataclass
class Reply:
    text: str
    record: RequestRecord
