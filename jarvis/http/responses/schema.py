"""OpenAI Responses request bodies -> the one internal ChatRequest.

Pydantic models that ignore unknown fields; a malformed item is a 400 naming it (`input[3].type`).
Honoured: model, input (a string, or items: messages with input_text / output_text parts,
function_call, function_call_output; reasoning items of earlier turns are accepted and left out
of the prompt), instructions, previous_response_id (its history comes first), max_output_tokens,
temperature, top_p, tools of type function (strict), tool_choice, parallel_tool_calls,
text.format (text / json_object / json_schema, through the same grammar as chat's
response_format), reasoning.effort (a thinking budget, [reasoning]), metadata, store, stream. Tools only OpenAI's servers run
(web_search, file_search, ...) follow server.unsupported_tools.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from jarvis.errors import InvalidRequest
from jarvis.config import ReasoningSettings
from jarvis.http.openai_schema import Effort, _invalid, _validated, extension_grammar, thinking_budget
from jarvis.structured import JsonSchemaSpec, ResponseFormat
from jarvis.tools.plan import FunctionName, NamedToolChoice, ToolPlan
from jarvis.http.surface_tools import client_fields, runnable_tools, tool_spec
from jarvis.request import ChatRequest, Message, Priority, ToolCall
from jarvis.request_options import RequestOptions
from jarvis.sampling import SamplingParams

MAX_INPUT_ITEMS = 10_000
# The discriminated unions' type names, left out of the field an error names.
ITEM_TAGS = frozenset({"message", "function_call", "function_call_output", "reasoning", "input_text", "output_text",
                       "text", "input_image", "input_file", "input_audio", "refusal"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Model):
    type: Literal["input_text", "output_text", "text"]
    text: str


class MediaPart(_Model):
    """Accepted by the schema so the error can say what to do, then refused."""

    type: Literal["input_image", "input_file", "input_audio"]


class RefusalPart(_Model):
    type: Literal["refusal"]
    refusal: str


Part = Annotated[Union[TextPart, MediaPart, RefusalPart], Field(discriminator="type")]


class MessageItem(_Model):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[Part]


class FunctionCallItem(_Model):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None


class FunctionCallOutputItem(_Model):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[Part]


class ReasoningItem(_Model):
    """An earlier turn's reasoning, sent back by clients that keep it: not shown to the model again."""

    type: Literal["reasoning"]


Item = Annotated[Union[MessageItem, FunctionCallItem, FunctionCallOutputItem, ReasoningItem],
                 Field(discriminator="type")]


class ToolIn(_Model):
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(_Model):
    type: Literal["function"]
    name: str


class TextFormat(_Model):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def response_format(self) -> ResponseFormat:
        spec = None
        if self.type == "json_schema":
            spec = JsonSchemaSpec(name=self.name or "response", description=self.description, schema=self.schema_,
                                  strict=self.strict)
        return ResponseFormat(type=self.type, json_schema=spec)


class TextConfig(_Model):
    format: TextFormat | None = None


class ReasoningConfig(_Model):
    effort: Effort | None = None


class ResponsesBody(_Model):
    model: str | None = None
    input: str | list[Item] = ""
    instructions: str | None = None
    previous_response_id: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    tools: list[ToolIn] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = True
    truncation: Literal["auto", "disabled"] | None = None  # None = engine.truncate; auto drops the oldest turns
    stream: bool | None = False
    n: int | None = None
    grammar: str | None = None  # JARVIS extension, as on chat completions: a GBNF grammar
    cache: bool | None = None  # JARVIS extension, as on chat completions: false bypasses the response cache
    priority: Literal["high", "normal", "low"] | None = None  # JARVIS extension, as on chat completions

    @model_validator(mode="before")
    @classmethod
    def _typed_items(cls, body: Any) -> Any:
        # A message may come without "type" (the SDK's EasyInputMessage): give it one.
        if isinstance(body, dict) and isinstance(body.get("input"), list):
            if len(body["input"]) > MAX_INPUT_ITEMS:
                raise ValueError(f"input has {len(body['input'])} items; at most {MAX_INPUT_ITEMS} are allowed")
            body = {**body, "input": [{**i, "type": "message"} if isinstance(i, dict) and "type" not in i and "role" in i
                                      else i for i in body["input"]]}
        return body

    @classmethod
    def parse(cls, body: dict) -> "ResponsesBody":
        try:
            parsed = cls.model_validate(body)
        except ValidationError as e:
            raise _invalid(e, ITEM_TAGS) from None
        if parsed.n not in (None, 1):
            raise InvalidRequest(f"n = {parsed.n}: only one answer per request is supported. Send separate "
                                 "requests for more.", field="n")
        return parsed

    def items(self) -> list[Any]:
        """This turn's input as items (a string is one user message)."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)] if self.input else []
        return list(self.input)


def _text(content: str | list, where: str) -> str:
    if isinstance(content, str):
        return content
    out = []
    for k, part in enumerate(content):
        if isinstance(part, MediaPart):
            raise InvalidRequest(f"{where}[{k}]: {part.type} parts need a vision or audio model, and JARVIS serves "
                                 "text models only. Send the content as input_text.", field=f"{where}[{k}].type")
        out.append(part.text if isinstance(part, TextPart) else part.refusal)
    return "".join(out)


def chat_messages(instructions: str | None, items: list[Any], first_index: int = 0) -> list[Message]:
    """Response items -> the domain's turns (function calls as an assistant's calls, their
    outputs as "tool" turns); `developer` is a system turn."""
    out: list[Message] = [Message("system", instructions)] if instructions else []
    for n, item in enumerate(items):
        where = f"input[{n - first_index}]" if n >= first_index else "previous_response_id"
        if isinstance(item, MessageItem):
            role = "system" if item.role == "developer" else item.role
            out.append(Message(role, _text(item.content, f"{where}.content")))
        elif isinstance(item, FunctionCallItem):
            call = ToolCall(item.call_id, item.name, item.arguments)
            if out and out[-1].role == "assistant" and out[-1].tool_calls:  # parallel calls of one turn
                out[-1] = Message("assistant", out[-1].content, out[-1].tool_calls + (call,))
            else:
                out.append(Message("assistant", "", (call,)))
        elif isinstance(item, FunctionCallOutputItem):
            out.append(Message("tool", _text(item.output, f"{where}.output"), tool_call_id=item.call_id))
    return out


def tool_plan(body: ResponsesBody, unsupported_policy: str) -> tuple[ToolPlan, list[int], list[str]]:
    """(the plan, the request index of each tool in it, the dropped tool types)."""
    tools, dropped = runnable_tools(body.tools or [], lambda t: t.type == "function", lambda t: t.type,
                                    unsupported_policy)
    specs = [tool_spec(i, t.name, t.description, t.parameters, t.strict) for i, t in tools]
    choice: Any = body.tool_choice
    if isinstance(choice, NamedFunction):
        choice = NamedToolChoice(function=FunctionName(name=choice.name))
    indexes = [i for i, _ in tools]
    try:
        return ToolPlan.of(specs, choice, body.parallel_tool_calls), indexes, dropped
    except InvalidRequest as e:
        raise client_fields(e, indexes, "parameters") from None


def chat_request(body: ResponsesBody, history: list[Any], generation: SamplingParams, unsupported_policy: str,
                 reasoning: ReasoningSettings = ReasoningSettings()) -> tuple[ChatRequest, ToolPlan, list[str]]:
    """The adapter: a Responses body and the stored history before it -> (the internal request,
    its tool plan, dropped tool types)."""
    plan, _, dropped = tool_plan(body, unsupported_policy)
    fmt = body.text.format.response_format() if body.text and body.text.format else None
    if fmt is not None:
        fmt.check()
    sampling = generation.with_overrides(max_tokens=body.max_output_tokens, temperature=body.temperature,
                                         top_p=body.top_p)
    messages = tuple(chat_messages(body.instructions, history + body.items(), len(history)))
    truncate = None if body.truncation is None else body.truncation == "auto"
    options = RequestOptions(tools=plan if plan.tools else None, response_format=fmt,
                             grammar=extension_grammar(body.grammar),
                             **thinking_budget(body.reasoning.effort if body.reasoning else None, reasoning))
    request = ChatRequest(messages=messages, model=body.model or "", sampling=sampling, source="api", truncate=truncate,
                          operation="openai.responses", options=options, whole_reply=not body.stream,
                          use_cache=body.cache is not False, priority=Priority.parse(body.priority or "normal"))
    return _validated(request), plan, dropped


def item_dict(item: Any) -> dict[str, Any]:
    """An input item as stored and listed: a message's text as parts, as OpenAI lists it."""
    d = item.model_dump(by_alias=True, exclude_none=True)
    if isinstance(item, MessageItem) and isinstance(item.content, str):
        d["content"] = [{"type": "output_text" if item.role == "assistant" else "input_text", "text": item.content}]
    return d


_STORED_ITEMS = TypeAdapter(list[Item])


def parse_items(raw: list[dict]) -> list[Any]:
    """Stored items (JSON, written by this server) back into models; no limit on how many."""
    return _STORED_ITEMS.validate_python(raw)


def function_call_item(call, item_id: str) -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call.id, "name": call.name,
            "arguments": call.arguments, "status": "completed"}

