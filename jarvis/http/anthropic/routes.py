"""POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API, translated.

The body becomes the one internal ChatRequest (schema.py); the Assistant's chunk stream becomes
Anthropic's content blocks (thinking, text, tool_use), whole or as the events the SDK's
`messages.stream()` reads: message_start, ping, content_block_start / _delta / _stop,
message_delta (stop_reason, stop_sequence, usage), message_stop; a fault after the headers is an
`error` event. Reasoning and tool calls come out of jarvis.http.answer, as on every surface.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import replace
from typing import Any

from aiohttp import web

from jarvis.errors import JarvisError
from jarvis.http.anthropic.errors import anthropic_error
from jarvis.http.anthropic.schema import CountTokensBody, MessagesBody, chat_request
from jarvis.http.answer import AnswerParser
from jarvis.http.api_base import ApiBase
from jarvis.http.openai_schema import parse_json
from jarvis.http.sse import ClientGone, EventStream
from jarvis.http.surface_tools import DROPPED_HEADER
from jarvis.request import ChatRequest, RequestRecord, ToolCall
from jarvis.token_count import count_tokens

CLIENT_CLOSED = 499


def stop_reason(record: RequestRecord, calls: tuple[ToolCall, ...]) -> str:
    if calls:
        return "tool_use"
    if record.finish_reason == "length":
        return "max_tokens"
    return "stop_sequence" if record.stop_sequence else "end_turn"


def usage(record: RequestRecord) -> dict[str, Any]:
    return {"input_tokens": record.prompt_tokens, "output_tokens": record.completion_tokens,
            "cache_read_input_tokens": record.cached_prompt_tokens, "cache_creation_input_tokens": 0}


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id.replace("call_", "toolu_", 1), "name": call.name,
            "input": json.loads(call.arguments)}


class _Reply:
    """What one reply has said so far, whichever way it is sent."""

    def __init__(self, body: MessagesBody, job: ChatRequest, parser: AnswerParser) -> None:
        self.body = body
        self.job = job
        self.parser = parser
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self.record = RequestRecord(request_id=job.request_id, model=job.model)

    def take(self, chunk) -> list[tuple[str, str]]:
        if chunk.done and chunk.record is not None:
            self.record = chunk.record
        return self.parser.feed(chunk)

    def stop(self) -> tuple[str, str | None]:
        """stop_reason and stop_sequence: which stop string ended the reply, as the backend said."""
        return stop_reason(self.record, self.parser.calls), self.record.stop_sequence or None

    def head(self, content: list, reason: str | None, matched: str | None) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.job.model, "content": content,
                "stop_reason": reason, "stop_sequence": matched, "usage": usage(self.record)}


class MessagesApi(ApiBase):
    async def _job(self, body: MessagesBody, operation: str = "anthropic.messages"):
        job, plan, dropped = chat_request(body, self.generation, self.server.unsupported_tools, operation,
                                           self.reasoning)
        job = replace(job, model=await self.assistant.resolve_model(job.model))  # waits for the first scan
        headers = {DROPPED_HEADER: ", ".join(dropped)} if dropped else {}
        return job, plan, headers

    async def count_tokens(self, request: web.Request) -> web.Response:
        # The prompt as the model sees it (template and tools included), tokenized, nothing generated.
        body = CountTokensBody.parse(parse_json(await request.read()))
        job, _, headers = await self._job(body, "anthropic.count_tokens")
        return web.json_response({"input_tokens": await count_tokens(self.assistant, job)}, headers=headers)

    async def create(self, request: web.Request) -> web.StreamResponse:
        body = MessagesBody.parse(parse_json(await request.read()))
        job, _, headers = await self._job(body)
        reply = _Reply(body, job, AnswerParser())
        if not body.stream:
            return await self._whole(reply, headers)
        events: list[EventStream] = []
        try:
            return await self._stream(request, reply, headers, events)
        except ClientGone:
            return events[0].response if events else web.Response(status=CLIENT_CLOSED)

    async def _whole(self, reply: _Reply, headers: dict[str, str]) -> web.Response:
        async with contextlib.aclosing(self.assistant.stream(reply.job)) as chunks:
            async for chunk in chunks:
                reply.take(chunk)
        reply.parser.finish()
        content: list[dict[str, Any]] = []
        if reply.parser.reasoning_text:
            content.append({"type": "thinking", "thinking": reply.parser.reasoning_text, "signature": ""})
        if reply.parser.content_text or not reply.parser.calls:
            content.append({"type": "text", "text": reply.parser.content_text})
        content += [tool_use_block(c) for c in reply.parser.calls]
        return web.json_response(reply.head(content, *reply.stop()), headers=headers)

    async def _stream(self, request: web.Request, reply: _Reply, headers: dict[str, str],
                      events: list[EventStream]) -> web.StreamResponse:
        async with contextlib.aclosing(self.assistant.stream(reply.job)) as chunks:
            iterator = aiter(chunks)
            first = await anext(iterator, None)  # a full queue or an unloadable model: still a plain 4xx/5xx
            sse = EventStream(request, headers)
            await sse.start()
            events.append(sse)
            blocks = _Blocks(sse)
            await sse.send({"type": "message_start", "message": reply.head([], None, None)}, "message_start")
            await sse.send({"type": "ping"}, "ping")
            try:
                chunk = first
                while chunk is not None:
                    for kind, text in reply.take(chunk):
                        await blocks.piece(kind, text)
                    if chunk.done:
                        break
                    chunk = await anext(iterator, None)
            except JarvisError as e:  # after the headers: Anthropic's error event
                await sse.send(anthropic_error(e.http_status, str(e)), "error")
                await sse.done(marker=False)
                return sse.response
        for kind, text in reply.parser.finish():
            await blocks.piece(kind, text)
        if not blocks.count and not reply.parser.calls:
            await blocks.piece("content", "")  # an empty answer is still one (empty) text block
        await blocks.close()
        for call in reply.parser.calls:
            await blocks.tool_use(call)
        reason, matched = reply.stop()
        await sse.send({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": matched},
                        "usage": usage(reply.record)}, "message_delta")
        await sse.send({"type": "message_stop"}, "message_stop")
        await sse.done(marker=False)
        return sse.response


class _Blocks:
    """Content blocks as they stream: a change from thinking to text closes one and opens the next."""

    def __init__(self, sse: EventStream) -> None:
        self.sse = sse
        self.count = 0
        self.open: str | None = None  # "reasoning" | "content"

    async def piece(self, kind: str, text: str) -> None:
        if self.open != kind:
            await self.close()
            start = {"type": "thinking", "thinking": "", "signature": ""} if kind == "reasoning" else \
                {"type": "text", "text": ""}
            await self._send("content_block_start", content_block=start)
            self.open = kind
        if text:
            delta = {"type": "thinking_delta", "thinking": text} if kind == "reasoning" else \
                {"type": "text_delta", "text": text}
            await self._send("content_block_delta", delta=delta)

    async def tool_use(self, call: ToolCall) -> None:
        block = tool_use_block(call)
        await self._send("content_block_start", content_block={**block, "input": {}})
        await self._send("content_block_delta", delta={"type": "input_json_delta", "partial_json": call.arguments})
        await self._send("content_block_stop")
        self.count += 1

    async def close(self) -> None:
        if self.open is not None:
            await self._send("content_block_stop")
            self.open = None
            self.count += 1

    async def _send(self, name: str, **fields: Any) -> None:
        await self.sse.send({"type": name, "index": self.count, **fields}, name)


def messages_routes(runtime):
    api = MessagesApi(runtime)

    def register(app: web.Application) -> None:
        app.router.add_post("/v1/messages", api.create)
        app.router.add_post("/v1/messages/count_tokens", api.count_tokens)

    return register
