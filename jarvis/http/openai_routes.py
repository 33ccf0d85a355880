"""OpenAI-compatible /v1 routes over the Assistant: models, chat completions, completions.

Every answer carries OpenAI's `usage` (real tokenizer counts from the request's RequestRecord)
and a `jarvis` object: that same record's figures (queue, TTFT, decode tokens/s, cache, ...), the
ones the desktop shows and the telemetry counts.
Errors before the first byte are HTTP errors in OpenAI's shape (the json_errors middleware maps
JarvisError: 400 invalid, 404 unknown model, 429 queue full, 503 unloadable model); an error
after a stream has started is sent as a `data: {"error": ...}` event, which OpenAI clients raise.
A client that disconnects cancels its request: aiohttp cancels the handler (see sse.py).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from dataclasses import replace
from typing import Any, AsyncIterator

from aiohttp import web

from jarvis.errors import JarvisError
from jarvis.http.anthropic.routes import messages_routes
from jarvis.http.answer import AnswerParser
from jarvis.http.api_base import ApiBase
from jarvis.http.embeddings_routes import embeddings_route
from jarvis.http.errors import error_type
from jarvis.http.logprobs import chat_logprobs, completion_logprobs
from jarvis.http.model_entry import model_entry
from jarvis.http.openai_schema import chat_request, completion_request, parse_json
from jarvis.http.rate_limit import rate_limit_middleware
from jarvis.http.responses.routes import responses_routes
from jarvis.http.sse import ClientGone, EventStream, encode
from jarvis.request import ChatRequest, Chunk, RequestRecord, ToolCall
from jarvis.request_options import TokenLogprob

FINGERPRINT = "jarvis"
CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never read by anyone


def usage(t: RequestRecord) -> dict[str, Any]:
    return {"prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
            "total_tokens": t.prompt_tokens + t.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": t.cached_prompt_tokens},
            "completion_tokens_details": {"reasoning_tokens": t.reasoning_tokens}}


def jarvis_figures(t: RequestRecord) -> dict[str, Any]:
    return t.figures()


def finish_reason(t: RequestRecord, calls: tuple[ToolCall, ...] = ()) -> str:
    if calls:
        return "tool_calls"
    return t.finish_reason if t.finish_reason in ("stop", "length") else "stop"


def error_event(e: JarvisError) -> dict[str, Any]:
    return {"error": {"message": str(e), "type": error_type(e.http_status), "param": getattr(e, "field", None),
                      "code": e.code}}


class _Shape:
    """The JSON OpenAI sends for one kind of completion."""

    def __init__(self, chat: bool, model: str, tools: bool = False, logprobs: bool = False) -> None:
        self.chat = chat
        self.model = model
        self.tools = tools  # the model may answer with calls: a stream opens with null content
        self.logprobs = logprobs
        self._text_offset = 0  # completions' logprobs count offsets over the whole streamed text
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self._text_parts: tuple[bytes, bytes] | None = None  # text_event's constant bytes

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": FINGERPRINT}

    def _logprobs(self, entries: tuple[TokenLogprob, ...] | None) -> dict[str, Any] | None:
        if not self.logprobs:
            return None
        if self.chat:
            return chat_logprobs(entries or ())
        out = completion_logprobs(entries or (), self._text_offset)
        self._text_offset += sum(len(e.token) for e in entries or ())
        return out

    def whole(self, text: str, t: RequestRecord, logprobs: tuple[TokenLogprob, ...] = (),
              calls: tuple[ToolCall, ...] = (), reasoning: str = "") -> dict[str, Any]:
        if self.chat:
            parser = AnswerParser()
            parser.feed(Chunk(text, reasoning=reasoning))
            parser.finish()
            content = parser.content_text
            message: dict[str, Any] = {"role": "assistant", "content": content if content or not calls else None}
            if parser.reasoning_text:  # both names clients read: llama-server's and vLLM's
                message["reasoning_content"] = message["reasoning"] = parser.reasoning_text
            if calls:
                message["tool_calls"] = [c.as_dict() for c in calls]
            choice = {"index": 0, "message": message, "logprobs": self._logprobs(logprobs),
                      "finish_reason": finish_reason(t, calls)}
        else:
            choice = {"index": 0, "text": text, "logprobs": self._logprobs(logprobs), "finish_reason": finish_reason(t)}
        return {**self._head("chat.completion" if self.chat else "text_completion"), "choices": [choice],
                "usage": usage(t), "jarvis": jarvis_figures(t)}

    def piece(self, text: str | None, finish: str | None = None, role: bool = False,
              logprobs: tuple[TokenLogprob, ...] | None = None, tool_calls: list[dict] | None = None,
              reasoning: str | None = None) -> dict[str, Any]:
        lp = self._logprobs(logprobs) if logprobs else None
        if self.chat:
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            if reasoning is not None:
                delta["reasoning_content"] = delta["reasoning"] = reasoning
            if tool_calls:
                delta["tool_calls"] = tool_calls
            choice = {"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}
            return {**self._head("chat.completion.chunk"), "choices": [choice]}
        choice = {"index": 0, "text": text or "", "logprobs": lp, "finish_reason": finish}
        return {**self._head("text_completion"), "choices": [choice]}

    def text_event(self, text: str) -> bytes:
        """The commonest event, a piece of answer text alone (chat's delta.content, completions'
        text), as SSE bytes: the same as encode(self.piece(text)), with everything but the text
        encoded once per stream instead of a dict and a json.dumps per token."""
        if self._text_parts is None:
            marker = "\x00"  # never in a model's name or this stream's id, so the split is exact
            self._text_parts = tuple(encode(self.piece(marker)).split(json.dumps(marker).encode()))
        before, after = self._text_parts
        return before + json.dumps(text).encode() + after

    def usage_event(self, t: RequestRecord) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return {**self._head(obj), "choices": [], "usage": usage(t), "jarvis": jarvis_figures(t)}


class OpenAIApi(ApiBase):
    # ---- models ----------------------------------------------------------------------------
    def _model_entry(self, info) -> dict[str, Any]:
        backends = self.assistant.backends
        return model_entry(info, backends.capabilities(info), backends.context_length(info))

    async def list_models(self, request: web.Request) -> web.Response:
        infos = (await self.assistant.catalog.ready()).usable()  # before the first scan: wait, never list none
        return web.json_response({"object": "list", "data": [self._model_entry(m) for m in infos]})

    async def get_model(self, request: web.Request) -> web.Response:
        info = await self.assistant.catalog.lookup(request.match_info["model"])
        return web.json_response(self._model_entry(info))

    # ---- completions -----------------------------------------------------------------------
    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = parse_json(await request.read())
        if body.get("jarvis_tools"):  # the server's own MCP tools, run here (`jarvis serve --mcp`)
            from jarvis.http.served_tools import served_tools_answer

            answer = await served_tools_answer(self.runtime, body, await self.assistant.resolve_model(body.get("model")))
            answer.update(id=f"chatcmpl-{uuid.uuid4().hex[:24]}", created=int(time.time()))
            return web.json_response(answer)
        parsed, job = chat_request(body, self.generation, self.reasoning)
        tools = job.options.tools is not None and job.options.tools.active
        return await self._complete(request, job, chat=True, stream=bool(parsed.stream),
                                    include_usage=parsed.include_usage, tools=tools)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        parsed, job = completion_request(parse_json(await request.read()), self.generation)
        return await self._complete(request, job, chat=False, stream=bool(parsed.stream),
                                    include_usage=parsed.include_usage)

    async def _complete(self, request: web.Request, job: ChatRequest, *, chat: bool, stream: bool,
                        include_usage: bool, tools: bool = False) -> web.StreamResponse:
        # An unknown model (404) or an unreadable one (503) is raised by the assistant before the
        # first chunk, so before any header is sent, streaming or not.
        name = await self.assistant.resolve_model(job.model)  # the default waits for the first scan
        job = replace(job, model=name, source="api")
        shape = _Shape(chat, name, tools, job.options.logprobs)
        events: list[EventStream] = []  # the SSE response, once its headers are out
        work = self._stream(request, job, shape, include_usage, events) if stream else self._whole(job, shape)
        try:
            return await work
        except ClientGone:
            return events[0].response if events else web.Response(status=CLIENT_CLOSED)

    async def _whole(self, job: ChatRequest, shape: _Shape) -> web.Response:
        parts: list[str] = []
        thought: list[str] = []  # reasoning a remote server split itself
        logprobs: list[TokenLogprob] = []
        last: Chunk | None = None
        async with contextlib.aclosing(self.assistant.stream(job)) as chunks:
            async for chunk in chunks:
                parts.append(chunk.text)
                thought.append(chunk.reasoning)
                logprobs.extend(chunk.logprobs or ())
                last = chunk
        assert last is not None and last.record is not None, "a stream that ends without an error ends with its record"
        return web.json_response(shape.whole("".join(parts), last.record, tuple(logprobs), last.tool_calls,
                                             "".join(thought)))

    async def _stream(self, request: web.Request, job: ChatRequest, shape: _Shape, include_usage: bool,
                      events: list[EventStream]) -> web.StreamResponse:
        async with contextlib.aclosing(self.assistant.stream(job)) as chunks:
            iterator: AsyncIterator[Chunk] = aiter(chunks)
            # Wait for the first chunk before sending headers: a full queue or a model that will not
            # load is still a plain 429/503 then, not an error event inside a 200.
            first = await anext(iterator, None)
            sse = EventStream(request)
            await sse.start()
            events.append(sse)
            if shape.chat:  # OpenAI opens a chat stream with the role (content null when tools may answer)
                await sse.send(shape.piece(None if shape.tools else "", role=True))
            last: Chunk | None = None
            parser = AnswerParser() if shape.chat else None
            try:
                chunk = first
                while chunk is not None:
                    if chunk.queue is not None:  # still waiting for a slot: say where, as a comment
                        eta = chunk.queue.eta_s
                        await sse.comment(f"queued position={chunk.queue.position}"
                                          + (f" eta_s={eta:.1f}" if eta is not None else ""))
                    if parser is None:
                        if chunk.logprobs:
                            await sse.send(shape.piece(chunk.text, logprobs=chunk.logprobs))
                        elif chunk.text:
                            await sse.send_encoded(shape.text_event(chunk.text))
                    else:
                        await _send_pieces(sse, shape, parser.feed(chunk), chunk.logprobs)
                    if chunk.done:
                        last = chunk
                        break
                    chunk = await anext(iterator, None)
            except JarvisError as e:  # after the headers: the stream's own error event
                await sse.send(error_event(e))
                with contextlib.suppress(ConnectionError):
                    await sse.response.write_eof()
                return sse.response
        assert last is not None and last.record is not None, "a stream that ends without an error ends with its record"
        t, calls = last.record, last.tool_calls
        if parser is not None:
            await _send_pieces(sse, shape, parser.finish(), None)
            for index, call in enumerate(calls):  # OpenAI's shape: id and name first, then the arguments
                await sse.send(shape.piece(None, tool_calls=[{"index": index, "id": call.id, "type": "function",
                                                               "function": {"name": call.name, "arguments": ""}}]))
                await sse.send(shape.piece(None, tool_calls=[{"index": index,
                                                               "function": {"arguments": call.arguments}}]))
        final = shape.piece(None if shape.chat else "", finish=finish_reason(t, calls))
        final["jarvis"] = jarvis_figures(t)
        # The last events, [DONE] and the end of the body in one write (one send for the client).
        await sse.done(before=encode(final) + (encode(shape.usage_event(t)) if include_usage else b""))
        return sse.response


async def _send_pieces(sse: EventStream, shape: _Shape, pieces: list, logprobs) -> None:
    """A chat stream's deltas for what the AnswerParser released: thinking as reasoning_content
    and reasoning, the answer as content; logprobs ride on the first (or on their own)."""
    for kind, text in pieces:
        if kind == "reasoning":
            await sse.send(shape.piece(None, reasoning=text, logprobs=logprobs))
        elif logprobs:
            await sse.send(shape.piece(text, logprobs=logprobs))
        else:
            await sse.send_encoded(shape.text_event(text))
        logprobs = None
    if logprobs:
        await sse.send(shape.piece(None, logprobs=logprobs))


def openai_routes(runtime):
    """Registrar factory for Runtime: `Runtime(settings, registrars=[openai_routes])`."""
    api = OpenAIApi(runtime)
    server = runtime.settings.server

    def register(app: web.Application) -> None:
        if server.rate_limit_rps > 0:
            app.middlewares.append(rate_limit_middleware(
                server.rate_limit_rps, server.rate_limit_burst,
                on_reject=lambda: runtime.hub.perf.incr("http.rate_limited")))
        app.router.add_get("/v1/models", api.list_models)
        app.router.add_get("/v1/models/{model}", api.get_model)
        app.router.add_post("/v1/chat/completions", api.chat_completions)
        app.router.add_post("/v1/completions", api.completions)
        app.router.add_post("/v1/embeddings", embeddings_route(runtime))
        messages_routes(runtime)(app)
        responses_routes(runtime)(app)

    return register
