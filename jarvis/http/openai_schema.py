"""OpenAI request bodies -> ChatRequest. Pydantic v2 models that ignore unknown fields, as OpenAI
does; every error is an InvalidRequest whose message and `field` name the field at fault
(`messages[1].content`, `temperature`, `n`), so the HTTP layer answers 400 with `param` set.

Honoured: model, messages (system/developer/user/assistant; content as text or a list of text
parts), prompt (completions), max_tokens / max_completion_tokens, temperature, top_p, seed, stop,
n (1 only), presence_penalty, frequency_penalty, stream, stream_options.include_usage;
reasoning_effort (a thinking budget, [reasoning]), response_format (jarvis.structured), tools / tool_choice / parallel_tool_calls and tool
messages (jarvis.tools), logprobs / top_logprobs (chat) and logprobs (completions). Tools and the
response format go into the request as they are: the backend that serves the model decides how
to honour them (a local model through a grammar, a remote server itself).
llama-server-style extensions: top_k, min_p, repeat_penalty, grammar (GBNF); JARVIS's own: priority,
cache (false bypasses the response cache) and stream_interval_ms (how often at most a stream's text
is sent; 0 = every token; unset = engine.stream_interval_ms).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from jarvis.config import EFFORTS, ReasoningSettings
from jarvis.errors import InvalidRequest
from jarvis.request import ChatRequest, Message, Priority, ToolCall
from jarvis.request_options import MAX_TOP_LOGPROBS, Grammar, RequestOptions
from jarvis.structured import ResponseFormat
from jarvis.tools.plan import ToolCallIn, ToolChoice, ToolPlan, ToolSpec
from jarvis.sampling import SamplingParams

# OpenAI's default max_tokens for the legacy completions endpoint; chat uses the settings' default.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
GRAMMAR_LABEL = "grammar"
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "null"}


def parse_json(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidRequest(f"The request body is not valid JSON ({e}). Send a JSON object with "
                             "Content-Type: application/json.") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, not {type(body).__name__}.")
    return body


def field_path(loc: tuple, tags: frozenset[str] = frozenset()) -> str:
    """('messages', 0, 'content') -> 'messages[0].content'; union tags pydantic adds are dropped,
    and so are `tags` (a discriminated union's type names: ('input', 0, 'message', 'role'))."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or part in _TYPE_TAGS or part.startswith(("function-", "literal")):
            continue
        elif part in tags and i > 0 and isinstance(loc[i - 1], int):
            continue
        else:
            out += f".{part}" if out else part
    return out or "body"


def _invalid(error: ValidationError, tags: frozenset[str] = frozenset()) -> InvalidRequest:
    # The most specific complaint: for `content: [{"type": "image_url"}]` that is the part's type,
    # not "content should be a string".
    first = max(error.errors(), key=lambda e: len(e["loc"]))
    name = field_path(first["loc"], tags)
    value = f" (got {first['input']!r:.60})" if first["type"] != "missing" else ""
    message = first["msg"].removeprefix("Value error, ")
    return InvalidRequest(f"{name}: {message}{value}.", field=name)


Effort = Literal[EFFORTS]  # type: ignore[valid-type]


def thinking_budget(effort: str | None, settings: ReasoningSettings, tokens: int | None = None) -> dict[str, Any]:
    """RequestOptions' thinking fields for an effort name (its budget from [reasoning]) or, from
    Anthropic's thinking.budget_tokens, a number of tokens (told to a remote server as the smallest
    effort that covers it). Neither: no limit."""
    if tokens is not None:
        return {"reasoning_budget": tokens, "reasoning_effort": effort or settings.effort_for(tokens)}
    return {"reasoning_budget": settings.budget(effort), "reasoning_effort": effort}


def extension_grammar(gbnf: str | None) -> Grammar | None:
    """The `grammar` extension (llama-server's): GBNF text, checked by llama.cpp when the request
    starts (a grammar it cannot parse is a 400)."""
    return Grammar(gbnf, GRAMMAR_LABEL) if gbnf else None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool | None = False


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # extensions
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    priority: Literal["high", "normal", "low"] | None = None
    cache: bool | Literal["exact"] | None = None  # false: bypass; "exact": no semantic match
    stream_interval_ms: float | None = None  # range checked by ChatRequest.validate, like the setting's

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @classmethod
    def parse(cls, body: dict):
        try:
            parsed = cls.model_validate(body)
        except ValidationError as e:
            raise _invalid(e) from None
        if parsed.n not in (None, 1):
            raise InvalidRequest(f"n = {parsed.n}: only n = 1 is supported. Send separate requests for more "
                                 "choices.", field="n")
        return parsed

    def _max_tokens(self) -> int | None:
        return self.max_tokens

    def _common(self, generation: SamplingParams, default_max_tokens: int | None = None) -> dict:
        max_tokens = self._max_tokens()
        # The settings' defaults, overridden by what the body sets; ranges are SamplingParams' own.
        sampling = generation.with_overrides(
            max_tokens=max_tokens if max_tokens is not None else default_max_tokens,
            temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop=self.stop,
            presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty,
            top_k=self.top_k, min_p=self.min_p, repeat_penalty=self.repeat_penalty)
        extra: dict[str, Any] = {"model": self.model or "", "sampling": sampling, "source": "api",
                                 "whole_reply": not self.stream}
        if self.priority:
            extra["priority"] = Priority.parse(self.priority)
        if self.cache == "exact":
            extra["semantic"] = False
        elif self.cache is not None:
            extra["use_cache"] = self.cache
        if self.stream_interval_ms is not None:
            extra["stream_interval_ms"] = self.stream_interval_ms
        return extra


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCallIn] | None = None  # an assistant's earlier calls
    tool_call_id: str | None = None  # a tool message: the call it answers

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def to_message(self) -> Message:
        """The domain's turn: OpenAI's "developer" is a system turn."""
        calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in self.tool_calls or ())
        return Message("system" if self.role == "developer" else self.role, self.text(), calls,
                       self.tool_call_id or "")


class ChatCompletionBody(_Body):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    grammar: str | None = None  # llama-server's extension: a GBNF grammar the answer must follow
    reasoning_effort: Effort | None = None

    def _max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def tool_plan(self) -> ToolPlan:
        return ToolPlan.of(self.tools, self.tool_choice, self.parallel_tool_calls)

    def _options(self, plan: ToolPlan, reasoning: ReasoningSettings) -> RequestOptions:
        if self.top_logprobs and not self.logprobs:
            raise InvalidRequest("top_logprobs needs logprobs: true.", field="top_logprobs")
        if self.response_format is not None:
            self.response_format.check()
        return RequestOptions(logprobs=bool(self.logprobs), top_logprobs=self.top_logprobs or 0,
                              tools=plan if plan.tools else None, response_format=self.response_format,
                              grammar=extension_grammar(self.grammar),
                              **thinking_budget(self.reasoning_effort, reasoning))

    def to_request(self, generation, reasoning: ReasoningSettings = ReasoningSettings()) -> ChatRequest:
        plan = self.tool_plan()
        return ChatRequest(messages=tuple(m.to_message() for m in self.messages), operation="openai.chat",
                           options=self._options(plan, reasoning), **self._common(generation))


class CompletionBody(_Body):
    prompt: str | list[str]
    logprobs: int | None = None  # the legacy API's form: alternatives per token (0 = the sampled one only)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError(f"one prompt per request is supported, got {len(value)}")
        return value

    def to_request(self, generation) -> ChatRequest:
        prompt = self.prompt[0] if isinstance(self.prompt, list) else self.prompt
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidRequest(f"logprobs = {self.logprobs} must be between 0 and {MAX_TOP_LOGPROBS}.", field="logprobs")
        options = RequestOptions(logprobs=self.logprobs is not None, top_logprobs=self.logprobs or 0)
        return ChatRequest(prompt=prompt, operation="openai.completion", options=options,
                           **self._common(generation, COMPLETIONS_DEFAULT_MAX_TOKENS))


def _validated(request: ChatRequest) -> ChatRequest:
    """Run the shared checks now, so a bad value is a 400 before any stream starts."""
    try:
        request.validate()
    except InvalidRequest as e:
        if e.field and e.field.split("[")[0] not in str(e):
            raise InvalidRequest(f"{e.field}: {e}", field=e.field) from None
        raise
    return request


def chat_request(body: dict, generation, reasoning: ReasoningSettings = ReasoningSettings()
                 ) -> tuple[ChatCompletionBody, ChatRequest]:
    parsed = ChatCompletionBody.parse(body)
    return parsed, _validated(parsed.to_request(generation, reasoning))


def completion_request(body: dict, generation) -> tuple[CompletionBody, ChatRequest]:
    parsed = CompletionBody.parse(body)
    return parsed, _validated(parsed.to_request(generation))
