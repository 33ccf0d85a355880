"""Tool calling over a model that only writes text (the local llama.cpp backend's way).

The tools are described to the model in a system section, and it answers a call as
`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>` (the Hermes / Qwen convention many
small instruct models were trained on). Earlier calls and tool results in the history are written
back the same way, results as `<tool_response>` blocks in a user turn. With `tool_choice`
"required" or a named function a grammar built from the functions' parameter schemas forces the
whole answer to be calls, so the arguments always validate; with "auto" the grammar switches on
lazily at `<tool_call>` (as llama-server does) and the text before it is the message's content.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jarvis.errors import InvalidRequest
from jarvis.json_grammar import tool_call_grammar
from jarvis.request import Message, ToolCall
from jarvis.request_options import Grammar

OPEN, CLOSE = "<tool_call>", "</tool_call>"
MAX_PARALLEL_CALLS = 4
TOOL_CALL_LABEL = "tool call"
_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)
# llama.cpp matches a lazy grammar's trigger against the whole text so far; group 1 is where it starts.
TRIGGER = r"[\s\S]*?(<tool_call>)[\s\S]*"


# ---- the request's JSON --------------------------------------------------------------------
class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"] = "function"
    function: FunctionSpec


class FunctionName(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"] = "function"
    function: FunctionName


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    arguments: str


class ToolCallIn(BaseModel):
    """An assistant message's earlier call, as the client sends it back."""

    model_config = ConfigDict(extra="ignore")
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


def _call_text(name: str, arguments: Any) -> str:
    return f"{OPEN}\n{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}\n{CLOSE}"


@dataclass(frozen=True)
class ToolPlan:
    """The tools of one request and what the model may or must do with them."""

    tools: tuple[FunctionSpec, ...]
    choice: str  # "auto" | "none" | "required" | a function's name
    parallel: bool

    @classmethod
    def of(cls, tools: list[ToolSpec] | None, choice: ToolChoice | None, parallel: bool | None) -> "ToolPlan":
        functions = tuple(t.function for t in tools or ())
        names = [f.name for f in functions]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise InvalidRequest(f"tools[{i}].function.name {name!r} is used twice.", field=f"tools[{i}].function.name")
        if isinstance(choice, NamedToolChoice):
            picked = choice.function.name
            if picked not in names:
                raise InvalidRequest(f"tool_choice names {picked!r}, which is not one of the tools "
                                     f"({', '.join(names) or 'none given'}).", field="tool_choice")
        else:
            picked = choice or ("auto" if functions else "none")
            if picked == "required" and not functions:
                raise InvalidRequest("tool_choice is \"required\" but the request has no tools.", field="tool_choice")
        return cls(functions, picked, True if parallel is None else parallel)

    def wire(self) -> dict[str, Any]:
        """The OpenAI request fields that pass these tools to a server that runs them itself."""
        choice: Any = self.choice if self.choice in ("auto", "none", "required") else \
            {"type": "function", "function": {"name": self.choice}}
        return {"tools": [{"type": "function", "function": f.model_dump(exclude_none=True)} for f in self.tools],
                "tool_choice": choice, "parallel_tool_calls": self.parallel}

    @property
    def active(self) -> bool:
        return bool(self.tools) and self.choice != "none"

    @property
    def forced(self) -> bool:
        return self.active and self.choice != "auto"

    # ---- the prompt ----------------------------------------------------------------------
    def system_section(self) -> str:
        described = "\n".join(json.dumps({"type": "function", "function": f.model_dump(exclude_none=True)},
                                         ensure_ascii=False) for f in self.tools)
        must = {"auto": "Call a function only when it helps to answer.",
                "required": "You must call at least one function."}.get(
            self.choice, f"You must call the function {self.choice}.")
        return (f"# Tools\n\nYou can call functions. They are described in JSON within <tools></tools>:\n"
                f"<tools>\n{described}\n</tools>\n\nTo call a function, answer with one JSON object per call, "
                f"each inside {OPEN}{CLOSE} tags:\n{OPEN}\n{{\"name\": <function name>, \"arguments\": "
                f"<arguments as a JSON object>}}\n{CLOSE}\n{must}")

    def render(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        """Chat turns with calls and results -> the plain system/user/assistant turns a chat
        template takes (ChatRequest.validate has checked their order already)."""
        out: list[Message] = []
        for i, m in enumerate(messages):
            if m.role == "tool":
                block = f"<tool_response>\n{m.content}\n</tool_response>"
                if out and out[-1].role == "user" and out[-1].content.startswith("<tool_response>"):
                    out[-1] = Message("user", out[-1].content + "\n" + block)
                else:
                    out.append(Message("user", block))
                continue
            text = m.content
            if m.tool_calls:
                calls = []
                for j, call in enumerate(m.tool_calls):
                    try:
                        arguments = json.loads(call.arguments or "{}")
                    except json.JSONDecodeError:
                        where = f"messages[{i}].tool_calls[{j}].function.arguments"
                        raise InvalidRequest(f"{where} is not valid JSON.", field=where) from None
                    calls.append(_call_text(call.name, arguments))
                text = "\n".join(([text] if text else []) + calls)
            out.append(Message(m.role, text))
        if self.active:
            section = self.system_section()
            if out and out[0].role == "system":
                out[0] = Message("system", f"{out[0].content}\n\n{section}" if out[0].content else section)
            else:
                out.insert(0, Message("system", section))
        return tuple(out)

    # ---- the grammar ---------------------------------------------------------------------
    def grammar(self) -> Grammar | None:
        if not self.active:
            return None
        functions = [(f.name, f.parameters or {"type": "object", "properties": {}})
                     for f in self.tools if self.choice in ("auto", "required", f.name)]
        indexes = {f.name: i for i, f in enumerate(self.tools)}
        try:
            gbnf = tool_call_grammar(functions, OPEN, CLOSE, MAX_PARALLEL_CALLS if self.parallel else 1)
        except InvalidRequest as e:  # the converter counted the functions it was given: name the tool
            raise _renamed(e, functions, indexes) from None
        return Grammar(gbnf, TOOL_CALL_LABEL, () if self.forced else (TRIGGER,))

    # ---- the answer ----------------------------------------------------------------------
    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """(content, calls). Text that is not a well-formed call to a known tool stays content."""
        start = text.find(OPEN) if self.active else -1
        if start < 0:
            return text, []
        names = {f.name for f in self.tools}
        calls: list[ToolCall] = []
        rest = text[start:]
        for match in _CALL_BLOCK.finditer(rest):
            try:
                obj = json.loads(match.group(1))
            except json.JSONDecodeError:
                return text, []
            if not isinstance(obj, dict) or obj.get("name") not in names or not isinstance(obj.get("arguments", {}), dict):
                return text, []
            arguments = json.dumps(obj.get("arguments", {}), ensure_ascii=False)
            calls.append(ToolCall(f"call_{uuid.uuid4().hex[:24]}", obj["name"], arguments))
        if not calls or _CALL_BLOCK.sub("", rest).strip():  # a cut-off call, or text between calls
            return text, []
        return text[:start].rstrip() or None, calls


def _renamed(error: InvalidRequest, functions: list[tuple[str, dict]], indexes: dict[str, int]) -> InvalidRequest:
    match = re.match(r"tools\[(\d+)\]", error.field or "")
    if not match:
        return error
    real = indexes[functions[int(match.group(1))][0]]
    field = f"tools[{real}]" + (error.field or "")[match.end():]
    return InvalidRequest(str(error).replace(match.group(0), f"tools[{real}]", 1), field=field)


class ContentFilter:
    """Streams an answer's content while holding back what may be the start of a tool call, so
    the content a client accumulates equals the non-streamed message's."""

    def __init__(self, plan: ToolPlan) -> None:
        self.plan = plan
        self.raw = ""
        self._released = 0
        self._in_call = False

    def feed(self, text: str) -> str:
        self.raw += text
        if self._in_call:
            return ""
        start = self.raw.find(OPEN)
        if start >= 0:
            self._in_call = True
            limit = len(self.raw[:start].rstrip())
        else:
            limit = len(self.raw)
            for n in range(min(len(OPEN) - 1, len(self.raw)), 0, -1):
                if self.raw.endswith(OPEN[:n]):
                    limit -= n
                    break
            limit = len(self.raw[:limit].rstrip())  # whitespace before a call is not content
        out = self.raw[self._released:limit] if limit > self._released else ""
        self._released = max(self._released, limit)
        return out

    def finish(self) -> tuple[str, list[ToolCall]]:
        """(content not yet released, the calls)."""
        content, calls = self.plan.parse(self.raw)
        whole = (content or "") if calls else self.raw
        return whole[self._released:], calls
