"""The tool loop: the model calls tools, JARVIS runs them, the model goes on with the results.

Below every front end (the desktop, `jarvis ask --tools`, `jarvis chat`), above the backends: an
answer is streamed through `Assistant.stream` with the source's tools as the request's ToolPlan;
when its last chunk carries tool calls, each call's arguments are checked against the tool's
input schema, approved (the tool's policy, or the front end's injected `approve` callback), run,
and its result (capped, the cap stated) goes back as a "tool" message; then the model answers
again, up to `max_rounds` rounds, after which it gets no tools and must answer in words.
Cancelling the turn (the user's Stop) cancels a running call with it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Awaitable, Callable, Literal

from jarvis.errors import InvalidRequest
from jarvis.request import ChatRequest, Chunk, Message, ToolCall
from jarvis.telemetry.records import ToolCallFigures, ToolFigures
from jarvis.tools.plan import FunctionSpec, ToolPlan
from jarvis.tools.source import ToolInfo, ToolOutput, ToolSource

log = logging.getLogger("jarvis.tools")
Decision = Literal["once", "always", "deny"]
# The front end's question to the user: (the tool, the call, its parsed arguments) -> decision.
Approver = Callable[[ToolInfo, ToolCall, dict], Awaitable[Decision]]
CallStatus = Literal["running", "done", "error", "denied", "invalid"]

DENIED = "The user denied this call of {name}. Do not call it again unless the user asks; answer without it."
FORBIDDEN = "Calls of {name} are switched off in the user's settings (approval = \"never\"). Answer without it."


@dataclass(frozen=True)
class ToolEvent:
    """What happened to one call, for a front end to show: "running" when it starts, then
    "done", "error", "denied" or "invalid" (arguments that do not fit the schema) with the result
    text the model gets and the call's own time."""

    call: ToolCall
    tool: ToolInfo | None
    status: CallStatus
    round: int
    arguments: dict = field(default_factory=dict)
    result: str = ""
    ms: float = 0.0  # the call's own time (the source's request to its answer)
    asked_ms: float = 0.0  # how long the approval question waited on the user


@dataclass(frozen=True)
class LoopOverhead:
    """The loop's own time in one round, the tool's and the user's excluded: from the model's last
    token to the first call's request handed to the source, and from the last result to the next
    request handed to the Assistant."""

    call_ms: float
    resume_ms: float
    handoff_ms: float = 0.0  # of call_ms: the last token's way to the loop (engine, Assistant, record)


@dataclass
class ToolTurn:
    """One user turn through the loop. Iterate it for Chunks (the model's text) and ToolEvents;
    afterwards `messages` holds what the turn added to the conversation (assistant calls, tool
    results, the final answer), ready to store."""

    _loop: "ToolLoop"
    _request: ChatRequest
    _choice: str
    messages: list[Message] = field(default_factory=list)
    rounds: int = 0
    tool_ms: float = 0.0
    overheads: list[LoopOverhead] = field(default_factory=list)

    def __aiter__(self) -> AsyncIterator[Chunk | ToolEvent]:
        return self._loop._run(self)


class ToolLoop:
    """One per conversation: remembers the user's "always" answers for its life."""

    def __init__(self, assistant: Any, source: ToolSource, approve: Approver | None, *, max_rounds: int = 4,
                 result_max_kb: int = 16, parallel: bool = False) -> None:
        self.assistant = assistant
        # One call per round by default: small local models forced into the call grammar tend to
        # repeat a call until max_tokens cuts it; further calls come in the next rounds.
        self.parallel = parallel
        self.source = source
        self.approve = approve
        self.max_rounds = max_rounds
        self.result_max_kb = result_max_kb
        self.always: set[str] = set()  # tools the user allowed for the rest of this conversation

    def turn(self, request: ChatRequest, choice: str = "auto") -> ToolTurn:
        """`choice` binds the first round only ("required" or a tool's name forces a call); later
        rounds are "auto", so a forced call does not repeat for ever."""
        return ToolTurn(self, request, choice)

    async def _run(self, turn: ToolTurn) -> AsyncIterator[Chunk | ToolEvent]:
        tools = {t.name: t for t in await self.source.list_tools()}
        if turn._choice not in ("auto", "none", "required") and turn._choice not in tools:
            raise InvalidRequest(f"tool_choice names {turn._choice!r}, which is not one of the enabled tools "
                                 f"({', '.join(tools) or 'none: is a server configured and running?'}).",
                                 field="tool_choice")
        specs = tuple(FunctionSpec(name=t.name, description=t.description or None, parameters=t.input_schema)
                      for t in tools.values())
        messages = list(turn._request.messages)
        choice = turn._choice if tools else "none"
        schema_tokens = await self._server_tokens(tools, turn._request.model)
        calls_made: list[ToolCallFigures] = []  # the last round's, for the next request's record
        resume_from = 0.0  # the last result's arrival, for the resume overhead
        call_ms = handoff_ms = 0.0
        while True:
            if turn.rounds >= self.max_rounds:
                choice = "none"  # the model has had its rounds: it answers in words now
            plan = ToolPlan(specs, choice, self.parallel)
            figures = ToolFigures(turn.rounds, turn.tool_ms, tuple(calls_made), schema_tokens if plan.active else {})
            request = replace(turn._request, messages=tuple(messages), tool_figures=figures,
                              options=replace(turn._request.options, tools=plan if specs else None))
            text: list[str] = []
            calls: tuple[ToolCall, ...] = ()
            last_token_at = 0.0
            stream = self.assistant.stream(request)
            if resume_from:
                turn.overheads.append(LoopOverhead(call_ms, (time.perf_counter() - resume_from) * 1000, handoff_ms))
            async for chunk in stream:
                text.append(chunk.text)
                if chunk.done:
                    calls = chunk.tool_calls
                    received_at = time.perf_counter()
                    last_token_at = (chunk.timings.last_token_at if chunk.timings and chunk.timings.last_token_at
                                     else received_at)
                    handoff_ms = (received_at - last_token_at) * 1000
                yield chunk
            content = "".join(text)
            if not calls:
                turn.messages.append(Message("assistant", content))
                return
            turn.rounds += 1
            choice = "auto"
            said = Message("assistant", content, tool_calls=calls)
            messages.append(said)
            turn.messages.append(said)
            first = True
            calls_made = []
            for call in calls:
                async for event, output in self._one(call, tools.get(call.name), turn.rounds):
                    yield event
                    if output is None:
                        continue
                    if event.tool is not None:
                        calls_made.append(ToolCallFigures(event.tool.server, event.tool.name, event.status, event.ms))
                    if first and output.sent_at:
                        call_ms = (output.sent_at - last_token_at) * 1000 - event.asked_ms
                        first = False
                    resume_from = output.answered_at or time.perf_counter()
                    turn.tool_ms += event.ms
                    result = Message("tool", event.result, tool_call_id=call.id)
                    messages.append(result)
                    turn.messages.append(result)

    async def _server_tokens(self, tools: dict[str, ToolInfo], model: str) -> dict[str, int]:
        """{server: tokens its enabled tools' schemas add to the prompt} in the request's model, as
        the Tools tab counts them; {} for a model without a local GGUF (a remote) or no tools."""
        catalog = getattr(self.assistant, "catalog", None)
        if not tools or catalog is None:
            return {}
        from jarvis.tools.cost import SCHEMA_TOKENS

        try:
            info = catalog.snapshot().get(model or self.assistant.default_model())
            path, identity = getattr(info, "path", None), getattr(info, "identity", None)
            if path is None or identity is None:
                return {}
            key = SCHEMA_TOKENS.key(list(tools.values()), identity)
            known = SCHEMA_TOKENS.get(key)  # the usual case: counted before, no thread hop
            per_tool, _ = known or await asyncio.to_thread(SCHEMA_TOKENS.count, key, list(tools.values()), path)
        except Exception as e:  # noqa: BLE001 - a figure for the monitor: the answer says what is wrong itself
            log.info("The tools' schema tokens were not counted: %s", e)
            return {}
        out: dict[str, int] = {}
        for name, tool in tools.items():
            out[tool.server] = out.get(tool.server, 0) + per_tool.get(name, 0)
        return out

    async def _one(self, call: ToolCall, tool: ToolInfo | None, round_: int):
        """(event, output) pairs for one call: the "running" event, then the outcome with the
        ToolOutput (a synthetic one for calls that never ran)."""
        asked_ms = 0.0
        if tool is None:
            text = f"Error: there is no tool named {call.name}."
            yield ToolEvent(call, None, "invalid", round_, {}, text), _now(text)
            return
        arguments, problem = check_arguments(tool.input_schema, call.arguments)
        if problem:
            text = f"Error: the arguments do not fit {tool.name}'s input schema: {problem}. Call it again with " \
                   "arguments that do."
            yield ToolEvent(call, tool, "invalid", round_, arguments or {}, text), _now(text)
            return
        if tool.approval == "never":
            text = FORBIDDEN.format(name=tool.name)
            yield ToolEvent(call, tool, "denied", round_, arguments, text), _now(text)
            return
        if tool.approval == "ask" and tool.name not in self.always:
            asked = time.perf_counter()
            # No one to ask (a front end without a way to ask): the call does not run.
            decision = await self.approve(tool, call, arguments) if self.approve is not None else "deny"
            if decision == "always":
                self.always.add(tool.name)
                await self.source.allow_always(tool)  # kept in the user's settings: not asked next time
            asked_ms = (time.perf_counter() - asked) * 1000  # the user's time, and the settings write
            if decision == "deny":
                text = DENIED.format(name=tool.name)
                yield ToolEvent(call, tool, "denied", round_, arguments, text, 0.0, asked_ms), _now(text)
                return
        yield ToolEvent(call, tool, "running", round_, arguments, asked_ms=asked_ms), None
        started = time.perf_counter()
        try:
            output = await self.source.call(tool, arguments)
        except Exception as e:  # noqa: BLE001 - the model hears what went wrong; the answer goes on
            output = ToolOutput(f"Error: {e}", True, started, time.perf_counter())
        ms = ((output.answered_at - output.sent_at) if output.sent_at else time.perf_counter() - started) * 1000
        text = cap(output.text, self.result_max_kb)
        yield ToolEvent(call, tool, "error" if output.is_error else "done", round_, arguments, text, ms, asked_ms), output


def _now(text: str) -> ToolOutput:
    t = time.perf_counter()
    return ToolOutput(text, True, 0.0, t)


def cap(text: str, max_kb: int) -> str:
    """At most max_kb KiB of UTF-8; a cut result says how long it was and where the cut is."""
    raw = text.encode()
    limit = max_kb * 1024
    if len(raw) <= limit:
        return text
    kept = raw[:limit].decode(errors="ignore")
    return (f"{kept}\n[The result was cut: it is {len(raw):,} bytes and only the first {max_kb} KiB are shown "
            "(setting mcp.result_max_kb). Ask the tool for less if you need the rest.]")


def check_arguments(schema: dict, arguments: str) -> tuple[dict | None, str]:
    """(the parsed arguments, "" or what is wrong with them) against a tool's input schema:
    jsonschema's validator when it is installed, else a check of the type, required keys and
    the properties' JSON types."""
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError as e:
        return None, f"the arguments are not valid JSON ({e.msg} at character {e.pos})"
    if not isinstance(parsed, dict):
        return None, "the arguments must be a JSON object"
    validator = _validator(json.dumps(schema, sort_keys=True))
    if validator is None:
        return parsed, _minimal_check(schema, parsed)
    errors = sorted(validator.iter_errors(parsed), key=lambda e: list(e.path))
    if not errors:
        return parsed, ""
    first = errors[0]
    where = "/".join(str(p) for p in first.path)
    return parsed, f"{where}: {first.message}" if where else first.message


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str):
    """A compiled validator per schema (checking and compiling one costs ~1 ms; a tool's schema
    rarely changes), or None without jsonschema or for a schema it rejects."""
    try:
        from jsonschema import validators
    except ImportError:  # pragma: no cover - jsonschema comes with the mcp SDK
        return None
    schema = json.loads(schema_json)
    validator_class = validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except Exception:  # noqa: BLE001 - a server's broken schema: the minimal check instead
        return None
    return validator_class(schema)


_JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
               "array": list, "null": type(None)}


def _minimal_check(schema: dict, arguments: dict) -> str:
    missing = [k for k in schema.get("required", []) if k not in arguments]
    if missing:
        return f"{missing[0]!r} is a required property"
    for key, value in arguments.items():
        kind = (schema.get("properties") or {}).get(key, {}).get("type")
        expected = _JSON_TYPES.get(kind) if isinstance(kind, str) else None
        if expected and (not isinstance(value, expected) or (kind != "boolean" and isinstance(value, bool))):
            return f"{key}: {value!r} is not of type {kind!r}"
    return ""
