"""A remote server: `submit`, `stream`, `cancel`, `queue_depth`, `busy` for its models, the
last chunk of every reply carrying neutral Timings (the Assistant builds the record, like a local
one's). `RemoteModelBackend` is one of its models as a jarvis.backends.Backend.

One RemoteBackend per `[remotes.NAME]`: a bounded priority queue in front of `max_concurrency`
requests in flight upstream (QueueFull past `engine.max_queue` waiting). A request goes to the
healthy replica with the fewest outstanding; one that fails before its first token is retried
once on another replica; once text was handed on, a failure ends the reply with a RemoteError
(never a silent duplicate). Closing the stream (a client gone, a cancel) closes the upstream
HTTP response at once, so the server stops generating.

Tools, response_format, logprobs and embeddings are passed through to the server (it runs them);
a server that refuses one answers 400, said with the remote's name. Every figure is measured here,
on JARVIS's side: queue (waiting for a free upstream place), first token, tokens/s. What the server
says of itself (llama-server's `timings`, an upstream JARVIS's `jarvis` figures) rides along in
`Timings.server_timings`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

import numpy as np

from jarvis.backends.base import Capability, Embeddings
from jarvis.errors import (QueueFull, RemoteError, RemoteTimeout, RemoteUnavailable,
                           RequestCancelled, RequestTimeout)
from jarvis.remote.client import make_client
from jarvis.remote.replicas import Replica, pick
from jarvis.remote.settings import RemoteSettings
from jarvis.remote.wire import (ToolCallPieces, logprobs_of, reasoning_of, reasoning_tokens, request_args,
                                stop_string)
from jarvis.request import ChatRequest, Chunk, Priority, QueuePosition, Timings, resolve_timeout
from jarvis.request_queue import PriorityRequestQueue
from jarvis.telemetry import QueueRecord, RecordBus, StepRecord

log = logging.getLogger("jarvis.remote")
CHARS_PER_TOKEN = 4  # English text in common tokenizers: a remote's count_tokens estimate
SERVER_FIGURES = ("timings", "jarvis")  # llama-server's timings; another JARVIS's own record figures


@dataclass(eq=False)
class RemoteSeq:
    """One request for a remote model: the engine's SeqState counterpart."""

    request: ChatRequest
    model_name: str  # the catalog name, NAME/<model id>
    model_id: str  # the server's own id
    gate: asyncio.Future  # resolved when the request may go upstream
    submitted_at: float = field(default_factory=time.perf_counter)
    deadline: float | None = None
    admitted_at: float = 0.0
    cancelled: bool = False
    replica: Replica | None = None  # the one that answered (or failed last)
    queue_position: int = 0  # place in line at submission (0: an upstream place was free)
    moved: asyncio.Event = field(default_factory=asyncio.Event)  # its place in line changed
    place: tuple[int, float | None] | None = None  # (position, eta_s) last set by the queue


class _Failure(Exception):
    """An upstream failure, translated; `retry` when another replica may take the request."""

    def __init__(self, error: Exception, retry: bool):
        self.error = error
        self.retry = retry


class RemoteBackend:
    def __init__(self, name: str, settings: RemoteSettings, *, max_queue: int = 64,
                 request_timeout_s: float = 300, bus: RecordBus | None = None):
        self.name = name
        self.settings = settings
        self.max_queue = max_queue
        self.request_timeout_s = request_timeout_s
        self.bus = bus or RecordBus()
        self.replicas = [Replica(url) for url in settings.urls]
        # The engine's own queue (everything here runs on the loop, so its lock is never contended);
        # it tells each waiting request its place and a wait estimate, as a local model's does.
        self._waiting: PriorityRequestQueue[RemoteSeq] = PriorityRequestQueue(max_queue, on_position=self._moved)
        self.in_flight = 0

    # ---- the engine's face -------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        return self.in_flight > 0 or bool(self._waiting)

    @property
    def reachable(self) -> bool:
        return any(r.healthy for r in self.replicas)

    def last_error(self) -> str:
        errors = [r.last_error for r in self.replicas if r.last_error]
        return errors[0] if errors else "no answer yet"

    def check_reachable(self) -> None:
        if not self.reachable:
            raise RemoteUnavailable(self.name, self.last_error())

    def check_key(self) -> None:
        """A server that refused our key on every replica lists no models: say that, not 'no such model'."""
        refused = [r.extra["refused"] for r in self.replicas if "refused" in r.extra]
        if refused and len(refused) == len(self.replicas):
            raise RemoteError(self.name, f"{self.settings.base_url} answered {refused[0]} ({self._key_hint()})",
                              refused[0])

    def _key_hint(self) -> str:
        if self.settings.api_key_env:
            return f"the key in ${self.settings.api_key_env} was refused"
        return f"it wants a key: set remotes.{self.name}.api_key_env to the name of a variable that holds it"

    def client(self, replica: Replica):
        if replica.client is None:
            s = self.settings
            replica.client = make_client(replica.url, s.api_key_env, s.timeout_s, s.max_concurrency)
        return replica.client

    def submit(self, request: ChatRequest, model_name: str, model_id: str) -> RemoteSeq:
        """Queue a request. Raises RemoteUnavailable (every replica down) or QueueFull at once."""
        self.check_reachable()
        request.validate()
        timeout = resolve_timeout(request.timeout_s, self.request_timeout_s)
        loop = asyncio.get_running_loop()
        seq = RemoteSeq(request, model_name, model_id, loop.create_future())
        seq.deadline = seq.submitted_at + timeout if timeout is not None else None
        if self.in_flight < self.settings.max_concurrency and not self._waiting:
            self._admit(seq)
            return seq
        try:
            seq.queue_position = self._waiting.put(seq, int(Priority.parse(request.priority)))
        except QueueFull:
            self.bus.emit(QueueRecord(model_name, "rejected", len(self._waiting)))
            raise
        self._report()
        return seq

    def cancel(self, seq: RemoteSeq) -> None:
        seq.cancelled = True
        self._forget(seq)
        if not seq.gate.done():
            seq.gate.cancel()

    async def stream(self, seq: RemoteSeq) -> AsyncIterator[Chunk]:
        """Chunks of the reply, the last with its Timings. Leaving early closes the upstream."""
        try:
            while not seq.gate.done():
                if seq.place is not None:  # where it stands, before it waits on
                    yield Chunk(text="", queue=QueuePosition(*seq.place))
                    seq.place = None
                remaining = None if seq.deadline is None else max(0.0, seq.deadline - time.perf_counter())
                try:
                    await self._wait_gate_or_move(seq, remaining)
                except TimeoutError:
                    self.bus.emit(QueueRecord(seq.model_name, "timeout", len(self._waiting)))
                    raise RequestTimeout(resolve_timeout(seq.request.timeout_s, self.request_timeout_s)) from None
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if seq.cancelled and task is not None and not task.cancelling():
                        raise RequestCancelled() from None  # cancel(seq) while it waited, not this task
                    raise
            seq.admitted_at = time.perf_counter()
            async for chunk in self._attempts(seq):
                yield chunk
        finally:
            if seq.gate.done() and not seq.gate.cancelled():
                self._release()
            else:
                self._forget(seq)
                seq.gate.cancel()

    # ---- the queue ---------------------------------------------------------------------
    @staticmethod
    async def _wait_gate_or_move(seq: RemoteSeq, timeout: float | None) -> None:
        """Until the request may go upstream or its place in line changes; TimeoutError past `timeout`."""
        seq.moved.clear()
        if seq.place is not None or seq.gate.done():
            return
        moved = asyncio.ensure_future(seq.moved.wait())
        try:
            done, _ = await asyncio.wait({seq.gate, moved}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            moved.cancel()
        if not done:
            raise TimeoutError
        if seq.gate in done:
            seq.gate.result()  # a cancelled gate raises CancelledError here

    @staticmethod
    def _moved(seq: RemoteSeq, position: int, eta_s: float | None) -> None:
        seq.place = (position, eta_s)
        seq.moved.set()

    def _admit(self, seq: RemoteSeq) -> None:
        self.in_flight += 1
        seq.gate.set_result(None)
        self._report()

    def _release(self) -> None:
        self.in_flight -= 1
        while len(self._waiting) and self.in_flight < self.settings.max_concurrency:
            seq = self._waiting.pop()
            if seq.cancelled or seq.gate.done():
                continue
            self._admit(seq)
        self._report()

    def _report(self) -> None:
        """Requests upstream and waiting, as a local engine's steps report its slots and queue:
        the monitor's "Queue and batch" chart and the gauges see remote servers too."""
        self.bus.emit(StepRecord(self.name, self.in_flight, len(self._waiting), batch_tokens=0, decode_tokens=0,
                                 prefill_tokens=0, step_ms=0.0))

    def _forget(self, seq: RemoteSeq) -> None:
        self._waiting.remove(seq)

    # ---- upstream ----------------------------------------------------------------------
    async def _attempts(self, seq: RemoteSeq) -> AsyncIterator[Chunk]:
        tried: list[Replica] = []
        while True:
            replica = pick(self.replicas, tried)
            if replica is None:
                raise RemoteUnavailable(self.name, self.last_error())
            tried.append(replica)
            seq.replica = replica
            try:
                async for chunk in self._call(replica, seq):
                    yield chunk
                return
            except _Failure as f:
                if f.retry and len(tried) < 2 and pick(self.replicas, tried) is not None:
                    log.warning("remote %s: %s failed before its first token (%s); retrying on another replica",
                                self.name, replica.url, f.error)
                    continue
                raise f.error from None

    async def _call(self, replica: Replica, seq: RemoteSeq) -> AsyncIterator[Chunk]:
        import httpx2 as httpx
        import openai

        request = seq.request
        args = request_args(request, seq.model_id, self.settings.json_schema_as)
        client = self.client(replica)
        replica.outstanding += 1
        replica.started += 1
        sent = 0  # pieces handed on: after the first, a failure is never retried
        thought_pieces = 0  # deltas that carried thinking: its token count when the server gives none
        first = last = 0.0
        gaps: list[float] = []
        finish, usage, server = "", None, {}
        stopped_by = ""  # the stop string that ended it, where the server says (vLLM's stop_reason)
        calls = ToolCallPieces()
        try:
            try:
                create = client.completions.create if request.prompt is not None else client.chat.completions.create
                stream = await create(**args)
                async with stream:
                    async for event in stream:
                        extra = event.model_extra or {}
                        for key in SERVER_FIGURES:
                            if isinstance(extra.get(key), dict):
                                server = _numbers(extra[key])
                        if event.usage is not None:
                            usage = event.usage
                        text, thought, logprobs = "", "", ()
                        for choice in event.choices:
                            delta = getattr(choice, "delta", None)
                            if delta is not None:
                                text += delta.content or ""
                                thinking = reasoning_of(delta)
                                thought += thinking
                                thought_pieces += bool(thinking)
                                calls.feed(delta.tool_calls)
                                produced = bool(delta.content or delta.tool_calls or thought)
                            else:
                                text += choice.text or ""
                                produced = bool(choice.text)
                            logprobs += logprobs_of(choice)
                            finish = choice.finish_reason or finish
                            stopped_by = stop_string(choice, request.sampling.stop) or stopped_by
                            if not produced and not logprobs:
                                continue
                            now = time.perf_counter()
                            if sent == 0:
                                first = now
                            else:
                                gaps.append((now - last) * 1000)
                            last = now
                            sent += 1
                        if text or thought or logprobs:
                            yield Chunk(text, reasoning=thought, logprobs=logprobs or None)
                        if seq.deadline is not None and time.perf_counter() > seq.deadline:
                            raise RequestTimeout(resolve_timeout(request.timeout_s, self.request_timeout_s))
                if not finish:
                    raise httpx.RemoteProtocolError("the stream ended before the reply finished")
            except openai.APIStatusError as e:
                raise self._status_failure(replica, e, sent) from None
            except (openai.APIConnectionError, httpx.TransportError) as e:
                raise self._transport_failure(replica, e, sent) from None
            except openai.APIError as e:  # an error event inside the stream
                replica.failed(str(e))
                raise _Failure(RemoteError(self.name, f"{replica.url} failed mid-reply: {e.message}"),
                               retry=sent == 0) from None
        finally:
            replica.outstanding -= 1
        replica.succeeded()
        completion = usage.completion_tokens if usage is not None and usage.completion_tokens else sent
        cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None) or 0
        timings = Timings(
            finish_reason="length" if finish == "length" else "stop", stop_sequence=stopped_by, submitted_at=seq.submitted_at,
            admitted_at=seq.admitted_at, first_token_at=first, last_token_at=last, queue_position=seq.queue_position,
            prompt_tokens=usage.prompt_tokens if usage is not None else 0, cached_prompt_tokens=cached,
            completion_tokens=completion, reasoning_tokens=reasoning_tokens(usage) or thought_pieces,
            inter_token_ms=tuple(gaps), server_timings=server)
        yield Chunk("", done=True, timings=timings, tool_calls=calls.calls())

    async def embed(self, model_id: str, inputs: list[str | list[int]], dimensions: int | None) -> Embeddings:
        """Embeddings from the server (its /v1/embeddings), unit length like a local model's."""
        import openai

        self.check_reachable()
        replica = pick(self.replicas, [])
        if replica is None:
            raise RemoteUnavailable(self.name, self.last_error())
        extra = {"dimensions": dimensions} if dimensions is not None else {}
        try:
            page = await self.client(replica).embeddings.create(model=model_id, input=inputs, **extra)
        except openai.APIStatusError as e:
            raise self._status_failure(replica, e, 0).error from None
        except openai.APIError as e:
            raise self._transport_failure(replica, e, 0).error from None
        vectors = []
        for item in sorted(page.data, key=lambda d: d.index):
            v = np.asarray(item.embedding, dtype=np.float32)
            norm = float(np.linalg.norm(v))
            vectors.append(v / norm if norm > 0 else v)
        return Embeddings(vectors, page.usage.prompt_tokens if page.usage is not None else 0)

    def _status_failure(self, replica: Replica, e, sent: int) -> _Failure:
        status = e.status_code
        detail = _message(e)
        if status >= 500:
            replica.failed(f"HTTP {status}: {detail}")
            return _Failure(RemoteError(self.name, f"{replica.url} answered {status}: {detail}", status), sent == 0)
        replica.succeeded()  # it answered: it is up, the request is what it refused
        if status in (401, 403):
            error = RemoteError(self.name, f"{replica.url} answered {status} ({self._key_hint()}): {detail}", status)
        else:
            error = RemoteError(self.name, f"{replica.url} answered {status}: {detail}", status)
            if status in (400, 404, 413, 422, 429):
                error.http_status = 400 if status == 422 else status
        return _Failure(error, retry=False)

    def _transport_failure(self, replica: Replica, e: Exception, sent: int) -> _Failure:
        import httpx2 as httpx
        import openai

        timed_out = isinstance(e, (openai.APITimeoutError, httpx.TimeoutException))
        cause = e.__cause__ or e
        reason = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        replica.failed(reason, hard=not timed_out and sent == 0)
        if sent:
            return _Failure(RemoteError(self.name, f"{replica.url} failed after {sent} pieces of the reply were sent "
                                                   f"({reason}); the reply is incomplete and was not retried"),
                            retry=False)
        if timed_out:
            return _Failure(RemoteTimeout(self.name, self.settings.timeout_s), retry=True)
        return _Failure(RemoteUnavailable(self.name, f"{replica.url}: {reason}"), retry=True)

    def status(self) -> dict:
        return {"name": self.name, "base_url": self.settings.base_url, "reachable": self.reachable,
                "last_error": None if self.reachable else self.last_error(),
                "in_flight": self.in_flight, "queue_depth": self.queue_depth,
                "max_concurrency": self.settings.max_concurrency,
                "replicas": [r.status() for r in self.replicas]}


def _numbers(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _message(e) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(body.get("detail"), str):
            return body["detail"]
    return str(getattr(e, "message", e))


class RemoteModelBackend:
    """One model of a remote server as a jarvis.backends.Backend (what a lease hands out)."""

    capabilities = frozenset(Capability) - {Capability.SPECULATION}  # passed through; the server says no itself

    def __init__(self, server: RemoteBackend, model_name: str, model_id: str) -> None:
        self.server = server
        self.served_by = server.name
        self.model_name = model_name
        self.model_id = model_id

    def submit(self, request: ChatRequest) -> RemoteSeq:
        return self.server.submit(request, self.model_name, self.model_id)

    def stream(self, seq: RemoteSeq) -> AsyncIterator[Chunk]:
        return self.server.stream(seq)

    def cancel(self, seq: RemoteSeq) -> None:
        self.server.cancel(seq)

    async def count_tokens(self, request: ChatRequest) -> int:
        """An estimate: OpenAI-compatible servers have no endpoint that counts a chat's tokens, so
        it is one token per CHARS_PER_TOKEN characters of what would be sent (messages, tools)."""
        args = request_args(request, self.model_id)
        sent = json.dumps({k: args[k] for k in ("messages", "prompt", "tools") if k in args}, ensure_ascii=False)
        return max(1, -(-len(sent) // CHARS_PER_TOKEN))

    async def embed(self, inputs: list[str | list[int]], dimensions: int | None = None) -> Embeddings:
        return await self.server.embed(self.model_id, inputs, dimensions)

    @property
    def queue_depth(self) -> int:
        return self.server.queue_depth

    @property
    def busy(self) -> bool:
        return self.server.busy
