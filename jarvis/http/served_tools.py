"""`"jarvis_tools": true` on /v1/chat/completions (`jarvis serve --mcp`): the server's own MCP tools
for an API request, run by the same tool loop as the desktop's (jarvis.tools.loop), server-side.

Nobody can be asked over HTTP, so only tools whose approval is "always" are offered (the runtime's
`tool_source` is an AlwaysAllowed over the MCP hub); "ask" and "never" tools are not in the prompt.
The answer is OpenAI's chat completion of the turn's last words, with `usage` summed over the
turn's requests, the last request's `jarvis` figures (tool_rounds, tool_ms) and `jarvis_tool_calls`:
each call's tool, arguments, status, result and time. Not streamed (yet): a stream asks for 400.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from jarvis.errors import InvalidRequest
from jarvis.http.openai_schema import chat_request
from jarvis.request import Chunk, RequestRecord
from jarvis.tools.loop import ToolEvent, ToolLoop


def tool_choice(raw: Any) -> str:
    """OpenAI's tool_choice -> the loop's choice: "auto", "none", "required" or a tool's name."""
    if raw is None or raw in ("auto", "none", "required"):
        return raw or "auto"
    name = raw.get("function", {}).get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequest('tool_choice must be "auto", "none", "required" or {"type": "function", "function": '
                             '{"name": ...}}.', field="tool_choice")
    return name


async def served_tools_answer(runtime, body: dict, model: str) -> dict[str, Any]:
    """The whole answer of one chat completion with the server's tools (body: the request's JSON)."""
    source = runtime.tool_source  # None unless `jarvis serve --mcp` set its AlwaysAllowed
    if source is None:
        raise InvalidRequest("jarvis_tools: this server offers no tools of its own. Start it with `jarvis serve "
                             "--mcp` (its [mcp.servers.NAME] tools with approval = \"always\" are offered).",
                             field="jarvis_tools")
    if body.get("tools"):
        raise InvalidRequest("Send either tools (your own, whose calls you run) or jarvis_tools (this server's MCP "
                             "tools, run here), not both.", field="jarvis_tools")
    if body.get("stream"):
        raise InvalidRequest("Answers with jarvis_tools are not streamed yet: send stream: false.", field="stream")
    choice = tool_choice(body.get("tool_choice"))
    rest = {k: v for k, v in body.items() if k not in ("jarvis_tools", "tool_choice", "parallel_tool_calls")}
    _, job = chat_request(rest, runtime.settings.generation, runtime.settings.reasoning)
    job = replace(job, model=model, source="api")
    mcp = runtime.settings.mcp
    turn = ToolLoop(runtime.assistant, source, None, max_rounds=mcp.max_rounds,
                    result_max_kb=mcp.result_max_kb).turn(job, choice)
    records: list[RequestRecord] = []
    calls: list[dict[str, Any]] = []
    async for item in turn:
        if isinstance(item, ToolEvent):
            if item.status != "running":
                calls.append({"name": item.call.name, "server": item.tool.server if item.tool else "",
                              "arguments": item.arguments, "status": item.status, "result": item.result,
                              "ms": round(item.ms, 3)})
        elif isinstance(item, Chunk) and item.done and item.record is not None:
            records.append(item.record)
    last = records[-1]
    prompt = sum(r.prompt_tokens for r in records)
    completion = sum(r.completion_tokens for r in records)
    return {
        "object": "chat.completion", "model": model, "system_fingerprint": "jarvis",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": turn.messages[-1].content},
                     "logprobs": None, "finish_reason": last.finish_reason or "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        "jarvis": last.figures(), "jarvis_tool_calls": calls,
    }
