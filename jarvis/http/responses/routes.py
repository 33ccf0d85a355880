"""POST /v1/responses (OpenAI's Responses API), GET / DELETE /v1/responses/{id},
POST /v1/responses/{id}/cancel and GET /v1/responses/{id}/input_items: a translator.

The body (and the stored history of previous_response_id) becomes the one internal ChatRequest
(schema.py); the Assistant's chunk stream becomes output items (reasoning, message,
function_call), whole or as the named, numbered events the SDK's `responses.stream()` reads:
response.created, response.in_progress, response.output_item.added, response.content_part.added,
response.output_text.delta / .done, response.reasoning_text.delta / .done,
response.function_call_arguments.delta / .done, response.content_part.done,
response.output_item.done, then response.completed (or .incomplete at max_output_tokens,
.failed on a fault or a cancel). Reasoning and tool calls come out of jarvis.http.answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from jarvis.errors import InvalidRequest, JarvisError, ResponseNotFound
from jarvis.http.answer import AnswerParser
from jarvis.http.api_base import ApiBase
from jarvis.http.openai_schema import parse_json
from jarvis.http.responses.schema import ResponsesBody, chat_request, function_call_item, item_dict, parse_items
from jarvis.http.responses.store import ResponseStore, Stored
from jarvis.http.sse import ClientGone, EventStream
from jarvis.http.surface_tools import DROPPED_HEADER
from jarvis.request import RequestRecord

CLIENT_CLOSED = 499
log = logging.getLogger("jarvis.http")


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage(record: RequestRecord) -> dict[str, Any]:
    return {"input_tokens": record.prompt_tokens,
            "input_tokens_details": {"cached_tokens": record.cached_prompt_tokens},
            "output_tokens": record.completion_tokens, "output_tokens_details": {"reasoning_tokens": record.reasoning_tokens},
            "total_tokens": record.prompt_tokens + record.completion_tokens}


@dataclass
class _Running:
    """A response being generated: what cancel needs to stop it and wait for its stored end."""

    task: asyncio.Task
    cancelled: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    response: dict | None = None


class _Turn:
    """One response as it is made: its output items and its events, streamed or not."""

    def __init__(self, body: ResponsesBody, job, plan, model: str) -> None:
        self.body = body
        self.job = job
        self.parser = AnswerParser()
        self.parallel = plan.parallel
        self.id = _id("resp")
        self.created_at = int(time.time())
        self.model = model
        self.output: list[dict[str, Any]] = []
        self.record = RequestRecord(request_id=job.request_id, model=model)
        self.seq = 0
        self.open: dict[str, Any] | None = None  # the reasoning or message item being written
        self.sse: EventStream | None = None

    # ---- the response object -------------------------------------------------------------
    def response(self, status: str, error: dict | None = None) -> dict[str, Any]:
        b = self.body
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        fmt = b.text.format.model_dump(by_alias=True, exclude_none=True) if b.text and b.text.format else {"type": "text"}
        return {"id": self.id, "object": "response", "created_at": self.created_at, "status": status,
                "error": error, "incomplete_details": incomplete, "instructions": b.instructions,
                "max_output_tokens": b.max_output_tokens, "model": self.model,
                "output": self.output if status != "in_progress" else [],
                "parallel_tool_calls": self.parallel, "previous_response_id": b.previous_response_id,
                "reasoning": {"effort": b.reasoning.effort if b.reasoning else None, "summary": None},
                "store": bool(b.store), "temperature": self.job.sampling.temperature, "text": {"format": fmt},
                "tool_choice": b.tool_choice.model_dump() if isinstance(b.tool_choice, BaseModel) else
                b.tool_choice or "auto",
                "tools": [t.model_dump(exclude_none=True) for t in b.tools or []],
                "top_p": self.job.sampling.top_p, "truncation": "disabled", "metadata": b.metadata or {},
                "usage": usage(self.record) if status != "in_progress" else None}

    # ---- events --------------------------------------------------------------------------
    async def emit(self, kind: str, **fields: Any) -> None:
        if self.sse is not None:
            await self.sse.send({"type": kind, "sequence_number": self.seq, **fields}, kind)
            self.seq += 1

    async def piece(self, kind: str, text: str) -> None:
        item_type = "reasoning" if kind == "reasoning" else "message"
        if self.open is None or self.open["type"] != item_type:
            await self.close_item()
            await self._open(item_type)
        item = self.open
        assert item is not None
        index = len(self.output)
        if item_type == "reasoning":
            item["content"][0]["text"] += text
            await self.emit("response.reasoning_text.delta", item_id=item["id"], output_index=index,
                            content_index=0, delta=text)
        else:
            item["content"][0]["text"] += text
            await self.emit("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0,
                            delta=text, logprobs=[])

    async def _open(self, item_type: str) -> None:
        index = len(self.output)
        if item_type == "reasoning":
            self.open = {"type": "reasoning", "id": _id("rs"), "summary": [],
                         "content": [{"type": "reasoning_text", "text": ""}], "status": "in_progress"}
            await self.emit("response.output_item.added", output_index=index,
                            item={**self.open, "content": []})
            await self.emit("response.content_part.added", item_id=self.open["id"], output_index=index,
                            content_index=0, part={"type": "reasoning_text", "text": ""})
        else:
            self.open = {"type": "message", "id": _id("msg"), "status": "in_progress", "role": "assistant",
                         "content": [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}]}
            await self.emit("response.output_item.added", output_index=index, item={**self.open, "content": []})
            await self.emit("response.content_part.added", item_id=self.open["id"], output_index=index,
                            content_index=0, part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})

    async def close_item(self) -> None:
        item, self.open = self.open, None
        if item is None:
            return
        index = len(self.output)
        part = item["content"][0]
        if item["type"] == "reasoning":
            await self.emit("response.reasoning_text.done", item_id=item["id"], output_index=index, content_index=0,
                            text=part["text"])
        else:
            await self.emit("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                            text=part["text"], logprobs=[])
        await self.emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                        part=part)
        item["status"] = "completed"
        self.output.append(item)
        await self.emit("response.output_item.done", output_index=index, item=item)

    async def calls(self) -> None:
        for call in self.parser.calls:
            index = len(self.output)
            item = function_call_item(call, _id("fc"))
            await self.emit("response.output_item.added", output_index=index,
                            item={**item, "arguments": "", "status": "in_progress"})
            await self.emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                            delta=call.arguments)
            await self.emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                            arguments=call.arguments, name=call.name)
            self.output.append(item)
            await self.emit("response.output_item.done", output_index=index, item=item)


class ResponsesApi(ApiBase):
    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.store = ResponseStore(runtime.settings.responses_path, self.server.responses_retention_days * 86400)
        self.running: dict[str, _Running] = {}

    async def _stored(self, response_id: str) -> Stored:
        stored = await self.store.get(response_id) if self.store.enabled else None
        if stored is None:
            raise ResponseNotFound(response_id)
        return stored

    # ---- POST /v1/responses --------------------------------------------------------------
    async def create(self, request: web.Request) -> web.StreamResponse:
        body = ResponsesBody.parse(parse_json(await request.read()))
        history: list[dict] = []
        if body.previous_response_id:
            try:
                history = (await self._stored(body.previous_response_id)).conversation()
            except ResponseNotFound as e:
                raise InvalidRequest(f"previous_response_id: {e}", field="previous_response_id") from None
        job, plan, dropped = chat_request(body, parse_items(history), self.generation, self.server.unsupported_tools,
                                          self.reasoning)
        model = await self.assistant.resolve_model(job.model)  # the default waits for the first scan
        turn = _Turn(body, replace(job, model=model), plan, model)
        headers = {DROPPED_HEADER: ", ".join(dropped)} if dropped else {}
        input_items = [item_dict(i) for i in body.items()]
        running = self.running[turn.id] = _Running(asyncio.current_task())
        store = bool(body.store) and self.store.enabled
        if store:  # retrievable while it runs; not awaited: the first token need not wait for SQLite
            started = asyncio.ensure_future(self.store.put(turn.response("in_progress"), input_items,
                                                                history + input_items))
        events: list[EventStream] = []
        try:
            status, error = await self._generate(request, turn, headers, events, running)
            final = turn.response(status, error)
            if store:
                await started
                await self.store.put(final, input_items, history + input_items)
            running.response = final
            if turn.sse is None:
                return web.json_response(final, headers=headers)
            kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(status, "response.failed")
            await turn.emit(kind, response=final)
            await turn.sse.done(marker=False)
            return turn.sse.response
        except ClientGone:
            return events[0].response if events else web.Response(status=CLIENT_CLOSED)
        except JarvisError:  # refused before it started (queue full, bad grammar, ...): nothing to keep
            if store:
                await started
                await self.store.delete(turn.id)
            raise
        finally:
            running.finished.set()
            self.running.pop(turn.id, None)

    async def _generate(self, request, turn: _Turn, headers, events, running: _Running) -> tuple[str, dict | None]:
        """Runs the generation into `turn`; returns (status, error)."""
        try:
            async with contextlib.aclosing(self.assistant.stream(turn.job)) as chunks:
                iterator = aiter(chunks)
                chunk = await anext(iterator, None)  # a full queue or an unloadable model: still a plain 4xx/5xx
                if turn.body.stream:
                    turn.sse = EventStream(request, headers)
                    await turn.sse.start()
                    events.append(turn.sse)
                    await turn.emit("response.created", response=turn.response("in_progress"))
                    await turn.emit("response.in_progress", response=turn.response("in_progress"))
                try:
                    while chunk is not None:
                        for kind, text in turn.parser.feed(chunk):
                            await turn.piece(kind, text)
                        if chunk.done and chunk.record is not None:
                            turn.record = chunk.record
                            break
                        chunk = await anext(iterator, None)
                except JarvisError as e:
                    if turn.sse is None:
                        raise
                    await turn.close_item()
                    return "failed", {"code": e.code, "message": str(e)}
        except asyncio.CancelledError:
            if not running.cancelled:  # the client left: nothing to answer
                raise
            asyncio.current_task().uncancel()
            await turn.close_item()
            return "cancelled", {"code": "cancelled", "message": "Cancelled by POST /v1/responses/{id}/cancel."}
        for kind, text in turn.parser.finish():
            await turn.piece(kind, text)
        await turn.close_item()
        await turn.calls()
        if not turn.output:  # an empty answer is still one message
            await turn.piece("content", "")
            await turn.close_item()
        return ("incomplete" if turn.record.finish_reason == "length" and not turn.parser.calls else "completed"), None

    # ---- the stored ones -----------------------------------------------------------------
    async def retrieve(self, request: web.Request) -> web.Response:
        return web.json_response((await self._stored(request.match_info["id"])).response)

    async def delete(self, request: web.Request) -> web.Response:
        response_id = request.match_info["id"]
        if not (self.store.enabled and await self.store.delete(response_id)):
            raise ResponseNotFound(response_id)
        return web.json_response({"id": response_id, "object": "response.deleted", "deleted": True})

    async def cancel(self, request: web.Request) -> web.Response:
        response_id = request.match_info["id"]
        running = self.running.get(response_id)
        if running is None:
            stored = await self._stored(response_id)  # 404 when unknown
            raise InvalidRequest(f"Response {response_id!r} is not running (its status is "
                                 f"{stored.response.get('status')!r}); only a running response can be cancelled.",
                                 field="id")
        running.cancelled = True
        running.task.cancel()
        await running.finished.wait()
        if running.response is None:
            raise ResponseNotFound(response_id)
        return web.json_response(running.response)

    async def input_items(self, request: web.Request) -> web.Response:
        stored = await self._stored(request.match_info["id"])
        items = [{**item, "id": item.get("id") or f"item_{n}", "status": item.get("status", "completed")}
                 for n, item in enumerate(stored.input_items)]
        if request.query.get("order", "desc") == "desc":
            items.reverse()
        try:
            limit = max(1, min(100, int(request.query.get("limit", "20"))))
        except ValueError:
            raise InvalidRequest("limit must be a whole number from 1 to 100.", field="limit") from None
        page = items[:limit]
        return web.json_response({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})


def responses_routes(runtime):
    api = ResponsesApi(runtime)

    def register(app: web.Application) -> None:
        app.router.add_post("/v1/responses", api.create)
        app.router.add_get("/v1/responses/{id}", api.retrieve)
        app.router.add_delete("/v1/responses/{id}", api.delete)
        app.router.add_post("/v1/responses/{id}/cancel", api.cancel)
        app.router.add_get("/v1/responses/{id}/input_items", api.input_items)

        async def open_store(_: web.Application) -> None:
            try:
                await api.store.open()
            except (OSError, sqlite3.Error) as e:  # an unwritable data folder: serve, store nothing
                log.warning("Stored responses are off: %s cannot be opened (%s).", api.store.path, e)
                api.store.retention_s = 0

        async def close_store(_: web.Application) -> None:
            await api.store.close()

        app.on_startup.append(open_store)
        app.on_cleanup.append(close_store)

    return register
