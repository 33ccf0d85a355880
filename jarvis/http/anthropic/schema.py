"""Anthropic Messages request bodies -> the one internal ChatRequest.

Pydantic models that ignore unknown fields (as every route does); a malformed block is a 400 that
names it (`messages[1].content[0].type`). Honoured: model, max_tokens (required, as at Anthropic),
system (a string or text blocks), messages with text / tool_use / tool_result blocks (thinking
blocks of earlier turns are accepted and left out of the prompt), stop_sequences, temperature,
top_p, top_k, tools (input_schema), tool_choice auto / any / tool / none (disable_parallel_tool_use),
thinking (budget_tokens: the most tokens the model may think; disabled: none), metadata, stream. Image and document blocks need a vision backend: a clear 400.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jarvis.errors import InvalidRequest
from jarvis.config import ReasoningSettings
from jarvis.http.openai_schema import _invalid, _validated, extension_grammar, thinking_budget
from jarvis.tools.plan import FunctionName, NamedToolChoice, ToolPlan
from jarvis.http.surface_tools import client_fields, runnable_tools, tool_spec
from jarvis.request import ChatRequest, Message, Priority, ToolCall
from jarvis.request_options import RequestOptions
from jarvis.sampling import SamplingParams


# The discriminated union's type names, left out of the field an error names.
BLOCK_TAGS = frozenset({"text", "image", "document", "search_result", "tool_use", "tool_result", "thinking",
                        "redacted_thinking"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextBlock(_Model):
    type: Literal["text"]
    text: str


class MediaBlock(_Model):
    """Accepted by the schema so the error can say what to do, then refused."""

    type: Literal["image", "document", "search_result"]


class ToolUseBlock(_Model):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Model):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[Union[TextBlock, MediaBlock], Field(discriminator="type")]] | None = None
    is_error: bool | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "\n".join(b.text for b in self.content if isinstance(b, TextBlock))


class ThinkingBlock(_Model):
    """An earlier turn's thinking, sent back by clients that keep it: not shown to the model again."""

    type: Literal["thinking", "redacted_thinking"]


Block = Annotated[Union[TextBlock, MediaBlock, ToolUseBlock, ToolResultBlock, ThinkingBlock], Field(discriminator="type")]


class MessageIn(_Model):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolIn(_Model):
    """A client tool (`input_schema`), or a server tool (`type` such as web_search_20250305)."""

    type: str | None = None
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None

    @property
    def is_client_tool(self) -> bool:
        return self.type in (None, "custom")


class ToolChoiceIn(_Model):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(_Model):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(None, ge=1)


    def budget(self, settings: ReasoningSettings) -> dict[str, Any]:
        """enabled with budget_tokens: that many thinking tokens; disabled: none; else no limit."""
        if self.type == "disabled":
            return thinking_budget("none", settings)
        if self.type == "enabled" and self.budget_tokens is not None:
            return thinking_budget(None, settings, self.budget_tokens)
        return thinking_budget(None, settings)


class MessagesBody(_Model):
    model: str | None = None
    max_tokens: int = Field(ge=1)
    messages: list[MessageIn]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = None
    top_k: int | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: ThinkingConfig | None = None
    metadata: dict[str, Any] | None = None
    stream: bool | None = False
    grammar: str | None = None  # JARVIS extension, as on chat completions: a GBNF grammar
    cache: bool | None = None  # JARVIS extension, as on chat completions: false bypasses the response cache
    priority: Literal["high", "normal", "low"] | None = None  # JARVIS extension, as on chat completions

    @classmethod
    def parse(cls, body: dict) -> "MessagesBody":
        try:
            return cls.model_validate(body)
        except ValidationError as e:
            raise _invalid(e, BLOCK_TAGS) from None


class CountTokensBody(MessagesBody):
    max_tokens: int = 1  # not part of a count_tokens body


def _system_text(system: str | list[TextBlock] | None) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    return "\n\n".join(b.text for b in system)


def _refuse_media(block: MediaBlock, where: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {block.type} blocks need a vision model, and JARVIS serves text models only. "
                          "Send the content as text blocks.", field=f"{where}.type")


def chat_messages(body: MessagesBody) -> list[Message]:
    """Anthropic turns -> the domain's turns (tool_use blocks as an assistant's calls,
    tool_result blocks as "tool" turns)."""
    out: list[Message] = []
    system = _system_text(body.system)
    if system:
        out.append(Message("system", system))
    for i, m in enumerate(body.messages):
        if isinstance(m.content, str):
            out.append(Message(m.role, m.content))
            continue
        texts: list[str] = []
        calls: list[ToolCall] = []
        for j, block in enumerate(m.content):
            where = f"messages[{i}].content[{j}]"
            if isinstance(block, MediaBlock):
                raise _refuse_media(block, where)
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ToolUseBlock):
                if m.role != "assistant":
                    raise InvalidRequest(f"{where}: tool_use blocks belong in assistant messages.", field=f"{where}.type")
                calls.append(ToolCall(block.id, block.name, json.dumps(block.input, ensure_ascii=False)))
            elif isinstance(block, ToolResultBlock):
                if m.role != "user":
                    raise InvalidRequest(f"{where}: tool_result blocks belong in user messages.", field=f"{where}.type")
                for k, part in enumerate(block.content if isinstance(block.content, list) else []):
                    if isinstance(part, MediaBlock):
                        raise _refuse_media(part, f"{where}.content[{k}]")
                result = block.text()
                out.append(Message("tool", f"Error: {result}" if block.is_error else result,
                                   tool_call_id=block.tool_use_id))
        if texts or calls or not m.content:
            out.append(Message(m.role, "".join(texts), tuple(calls)))
    return out


def tool_plan(body: MessagesBody, unsupported_policy: str) -> tuple[ToolPlan, list[str]]:
    tools, dropped = runnable_tools(body.tools or [], lambda t: t.is_client_tool, lambda t: t.type, unsupported_policy)
    specs = [tool_spec(i, t.name, t.description, t.input_schema) for i, t in tools]
    choice = body.tool_choice
    parallel = None if choice is None or choice.disable_parallel_tool_use is None else not choice.disable_parallel_tool_use
    if choice is None or choice.type == "auto":
        picked: Any = "auto" if specs else None
    elif choice.type == "any":
        picked = "required"
    elif choice.type == "none":
        picked = "none"
    else:
        if not choice.name:
            raise InvalidRequest("tool_choice.name is required when tool_choice.type is \"tool\".", field="tool_choice.name")
        picked = NamedToolChoice(function=FunctionName(name=choice.name))
    try:
        return ToolPlan.of(specs, picked, parallel), dropped
    except InvalidRequest as e:
        raise client_fields(e, [i for i, _ in tools], "input_schema") from None


def chat_request(body: MessagesBody, generation: SamplingParams, unsupported_policy: str,
                 operation: str = "anthropic.messages", reasoning: ReasoningSettings = ReasoningSettings()
                 ) -> tuple[ChatRequest, ToolPlan, list[str]]:
    """The adapter: a Messages body -> (the internal request, its tool plan, dropped tool types)."""
    plan, dropped = tool_plan(body, unsupported_policy)
    sampling = generation.with_overrides(max_tokens=body.max_tokens, temperature=body.temperature,
                                         top_p=body.top_p, top_k=body.top_k, stop=body.stop_sequences)
    options = RequestOptions(tools=plan if plan.tools else None, grammar=extension_grammar(body.grammar),
                             **(body.thinking or ThinkingConfig(type="adaptive")).budget(reasoning))
    request = ChatRequest(messages=tuple(chat_messages(body)), model=body.model or "", sampling=sampling,
                          source="api", operation=operation, options=options, use_cache=body.cache is not False,
                          whole_reply=not body.stream,
                          priority=Priority.parse(body.priority or "normal"))
    return _validated(request), plan, dropped
