"""A request in the OpenAI wire format a remote server takes, and its streamed answer back in
JARVIS's terms: what is passed through (tools, response_format, logprobs) rather than served here.
"""

from __future__ import annotations

import json
from typing import Any

from jarvis.request import ChatRequest, Message, ToolCall
from jarvis.request_options import TokenLogprob

# Where servers put a reasoning model's thinking: llama-server and LM Studio, vLLM and Ollama.
REASONING_FIELDS = ("reasoning_content", "reasoning")


def request_args(request: ChatRequest, model_id: str, json_schema_as: str = "json_schema") -> dict[str, Any]:
    """Keyword arguments for `client.chat.completions.create` (or `completions.create`, with a
    prompt). `json_schema_as`: the form the server takes a JSON schema in (RemoteSettings)."""
    sp, options = request.sampling, request.options
    args: dict[str, Any] = dict(model=model_id, max_tokens=sp.max_tokens, temperature=sp.temperature,
                                top_p=sp.top_p, stream=True, stream_options={"include_usage": True},
                                extra_body={"top_k": sp.top_k, "min_p": sp.min_p, "repeat_penalty": sp.repeat_penalty})
    if sp.stop:
        args["stop"] = list(sp.stop)
    if sp.seed >= 0:
        args["seed"] = sp.seed
    if sp.presence_penalty:
        args["presence_penalty"] = sp.presence_penalty
    if sp.frequency_penalty:
        args["frequency_penalty"] = sp.frequency_penalty
    if request.prompt is not None:
        args["prompt"] = request.prompt
        if options.logprobs:
            args["logprobs"] = options.top_logprobs
        return args
    args["messages"] = [message_wire(m) for m in request.messages]
    if options.logprobs:
        args["logprobs"] = True
        args["top_logprobs"] = options.top_logprobs
    if options.tools is not None and options.tools.tools:
        args.update(options.tools.wire())
    if options.response_format is not None:
        args["response_format"] = response_format_wire(options.response_format, json_schema_as)
    if options.reasoning_effort is not None:  # the server thinks by its own budget for that effort
        args["reasoning_effort"] = options.reasoning_effort
    if options.grammar is not None:  # llama-server takes GBNF as it is
        args["extra_body"]["grammar"] = options.grammar.gbnf
    return args


def response_format_wire(fmt, json_schema_as: str) -> dict[str, Any]:
    wire = fmt.wire()
    if fmt.type == "json_schema" and json_schema_as == "json_object":  # llama-cpp-python's server's form
        schema = (wire.get("json_schema") or {}).get("schema") or {"type": "object"}
        return {"type": "json_object", "schema": schema}
    return wire


def message_wire(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [c.as_dict() for c in m.tool_calls]
        out["content"] = m.content or None
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
    return out


class ToolCallPieces:
    """Streamed `delta.tool_calls` fragments (id and name first, arguments in pieces), by index."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def feed(self, deltas) -> None:
        for d in deltas or ():
            call = self._calls.setdefault(d.index or 0, {"id": "", "name": "", "arguments": ""})
            if d.id and not call["id"]:
                call["id"] = d.id
            if d.function is not None:
                if d.function.name and not call["name"]:  # some servers (llama-cpp-python's) repeat it in every piece
                    call["name"] = d.function.name
                call["arguments"] += d.function.arguments or ""

    def calls(self) -> tuple[ToolCall, ...]:
        out = []
        for index in sorted(self._calls):
            c = self._calls[index]
            arguments = c["arguments"] or "{}"
            try:
                json.loads(arguments)
            except json.JSONDecodeError:
                pass  # passed on as the server sent it: the client sees what the model wrote
            out.append(ToolCall(c["id"] or f"call_{index}", c["name"], arguments))
        return tuple(out)


def stop_string(choice, stops: tuple[str, ...]) -> str:
    """The stop string that ended a choice, where the server names it (vLLM's `stop_reason`);
    "" when it does not (OpenAI, llama-server)."""
    said = (getattr(choice, "model_extra", None) or {}).get("stop_reason")
    return said if isinstance(said, str) and said in stops else ""


def reasoning_tokens(usage) -> int:
    """The thinking tokens a server counted (OpenAI's completion_tokens_details), 0 when it did not say."""
    details = getattr(usage, "completion_tokens_details", None)
    return getattr(details, "reasoning_tokens", None) or 0


def reasoning_of(delta) -> str:
    extra = getattr(delta, "model_extra", None) or {}
    for key in REASONING_FIELDS:
        if isinstance(extra.get(key), str):
            return extra[key]
    return ""


def logprobs_of(choice) -> tuple[TokenLogprob, ...]:
    """A streamed choice's token logprobs (chat: `logprobs.content`; completions: the legacy lists)."""
    lp = getattr(choice, "logprobs", None)
    if lp is None:
        return ()
    content = getattr(lp, "content", None)
    if content is not None:
        return tuple(TokenLogprob(e.token, bytes(e.bytes or e.token.encode()), e.logprob,
                                  tuple((t.token, bytes(t.bytes or t.token.encode()), t.logprob)
                                        for t in (e.top_logprobs or ())))
                     for e in content)
    tokens = getattr(lp, "tokens", None) or []
    values = getattr(lp, "token_logprobs", None) or []
    tops = getattr(lp, "top_logprobs", None) or [{}] * len(tokens)
    return tuple(TokenLogprob(t, t.encode(), v if v is not None else 0.0,
                              tuple((k, k.encode(), x) for k, x in sorted((top or {}).items(), key=lambda kv: -kv[1])))
                 for t, v, top in zip(tokens, values, tops))
