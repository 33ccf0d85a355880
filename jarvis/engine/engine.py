"""One loaded model: a worker thread that owns one llama context with N slots and decodes every
active slot together in one `llama_decode` per step (continuous batching, as llama-server's
parallel slots do).

Each step: cancelled or timed-out requests give their slot back; waiting requests take free
slots (the one sharing the longest prefix with their prompt); then one batch carries the next
token of every generating slot plus a chunk of any prompt being prefilled; then each slot that
produced logits samples its next token and hands text back through its mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from jarvis.config import EngineSettings
from jarvis.engine import backend, priority
from jarvis.engine.embedder import Embedder
from jarvis.engine.grammar import make_sampler
from jarvis.engine.handles import Batch, LlamaContext, LlamaModel
from jarvis.engine.logprobs import read_logprobs
from jarvis.engine.lookup import draft as lookup_draft
from jarvis.engine.mailbox import Mailbox
from jarvis.engine.prompt import PromptBuilder
from jarvis.engine.queue import PriorityRequestQueue
from jarvis.engine.sequence import SeqState, Slot, common_prefix
from jarvis.engine.text import StreamingText
from jarvis.gguf_header import GGUFError, read_header
from jarvis.errors import EngineClosed, EngineCrashed, JarvisError, ModelLoadError, RequestCancelled, RequestTimeout
from jarvis.request import ChatRequest, Chunk, QueuePosition, resolve_timeout
from jarvis.telemetry import ModelRecord, QueueRecord, RecordBus, RequestRecord, StepRecord

log = logging.getLogger("jarvis.engine")
MAX_CTX_DEFAULT = 8192
MIN_DRAFT = 2  # a one-token draft costs about a whole decode on a CPU: never worth it
DRAFT_PAUSE = 4  # steps without drafts after a draft the model rejected outright


_DEFAULTS = EngineSettings()  # the defaults are the settings' own, never a second copy


def auto_threads(cores: int | None = None) -> int:
    """engine.n_threads = 0: every core. Measured on a quiet 2-core machine against llama-server
    (README, Performance): 2 threads gave 1.43x the tok/s of 1 for one stream and 1.59x for four.
    Under a neighbour's load one thread did better (a ggml worker that loses its core stalls every
    step at the barrier), which is what an explicit engine.n_threads is for."""
    return cores or os.cpu_count() or 1


@dataclass(frozen=True)
class EngineConfig:
    """What one engine needs of the [engine] and [gpu] settings; ranges are checked there."""

    batch_size: int = _DEFAULTS.batch_size
    context_length: int = _DEFAULTS.context_length  # per slot; 0 = the model's trained length, capped
    prefill_chunk: int = _DEFAULTS.prefill_chunk
    n_threads: int = _DEFAULTS.n_threads
    max_queue: int = _DEFAULTS.max_queue
    request_timeout_s: float = _DEFAULTS.request_timeout_s  # 0 = no limit (see resolve_timeout)
    truncate: bool = _DEFAULTS.truncate
    lookup_draft: int = _DEFAULTS.lookup_draft  # prompt-lookup speculation: most tokens drafted per step; 0 = off
    worker_nice: int = _DEFAULTS.worker_nice  # added to the worker thread's nice value (priority.py)
    gpu_layers: int = 0  # what to ask llama.cpp for; -1 = all

    @classmethod
    def from_settings(cls, settings) -> "EngineConfig":
        e, g = settings.engine, settings.gpu
        return cls(batch_size=e.batch_size, context_length=e.context_length, prefill_chunk=e.prefill_chunk,
                   n_threads=e.n_threads, max_queue=e.max_queue, request_timeout_s=e.request_timeout_s,
                   truncate=e.truncate, lookup_draft=e.lookup_draft, worker_nice=e.worker_nice, gpu_layers=g.gpu_layers if g.use_gpu else 0)


class Engine:
    def __init__(self, name: str, path: Path, chat_template: str = "", config: EngineConfig = EngineConfig(),
                 bus: RecordBus | None = None, on_crash: Callable[[EngineCrashed], None] | None = None):
        """`on_crash` is called once, on the dying worker thread, after every request failed."""
        self.name = name
        self.path = Path(path)
        self.config = config
        self._chat_template = chat_template
        self._bus = bus or RecordBus()
        self._queue: PriorityRequestQueue[SeqState] = PriorityRequestQueue(
            config.max_queue, on_position=lambda seq, position, eta: seq.mailbox.put_queue(position, eta))
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._model: LlamaModel | None = None
        self._ctx: LlamaContext | None = None
        self._batch: Batch | None = None
        self._slots: list[Slot] = []
        self._embedder: Embedder | None = None
        self.load_ms = 0.0
        self.gpu_layers = 0
        self.offload_note = ""
        self.n_ctx_seq = 0
        self.crash: EngineCrashed | None = None  # set when the worker died; the engine takes nothing more
        self._on_crash = on_crash
        # Tests inject a deterministic fault here: called on the worker inside every step, between
        # llama_decode and sampling, with the engine. Whatever it raises crashes the worker.
        self.step_hook: Callable[["Engine"], None] | None = None
        # Where the worker's time goes, in seconds since load (read by the bench; a few adds a step):
        # prepare = reap + admit + filling the batch, decode = llama_decode, sample = sampling,
        # detokenizing and handing text over.
        self.phase_s = {"prepare": 0.0, "decode": 0.0, "sample": 0.0}
        self.steps = 0
        self.drafted_tokens = 0  # prompt-lookup drafts sent to llama_decode to be verified
        self.accepted_tokens = 0  # of which the model agreed with (kept)
        self._drafts_allowed = False  # set at load
        self.threads = 1  # llama.cpp's threads for this context, set at load

    # ---- life cycle (call load() off the event loop: it takes a while) --------------------
    def load(self) -> None:
        t0 = time.perf_counter()
        cfg = self.config
        gpu_layers = cfg.gpu_layers
        if gpu_layers != 0 and not backend.supports_gpu_offload():
            self.offload_note = backend.CPU_ONLY_NOTE
            backend.warn_cpu_only_once()
            gpu_layers = 0
        try:  # the file may have changed since the catalog read it: never hand llama.cpp an unchecked file
            read_header(self.path)
        except (GGUFError, OSError) as e:
            raise ModelLoadError(self.path, str(e)) from None
        backend.recent_problems.clear()
        try:
            self._model = LlamaModel(self.path, gpu_layers)
        except ModelLoadError as e:
            said = "; ".join(list(backend.recent_problems)[-2:])
            raise ModelLoadError(self.path, e.reason + (f" (llama.cpp: {said})" if said else "")) from None
        self.gpu_layers = gpu_layers
        n_ctx = cfg.context_length or min(self._model.n_ctx_train, MAX_CTX_DEFAULT)
        n_ctx = min(n_ctx, self._model.n_ctx_train or n_ctx)
        n_threads = cfg.n_threads or auto_threads()
        self.threads = n_threads
        n_batch = max(cfg.prefill_chunk, cfg.batch_size)
        try:
            self._ctx = LlamaContext(self._model, cfg.batch_size, n_ctx, n_batch, n_threads)
        except ModelLoadError:
            self._model.close()
            raise
        self.n_ctx_seq = self._ctx.n_ctx_seq
        # A rejected draft's cells must go while the rest of the sequence stays: recurrent and
        # hybrid memories cannot drop part of a sequence, so they never draft.
        self._drafts_allowed = cfg.lookup_draft > 0 and not self._model.recurrent
        self._batch = Batch(n_batch)
        self._prompts = PromptBuilder(self._model, self._chat_template)
        self._slots = [Slot(seq_id=i) for i in range(cfg.batch_size)]
        self._thread = threading.Thread(target=self._run, name=f"engine:{self.name}", daemon=True)
        self._thread.start()
        self.load_ms = (time.perf_counter() - t0) * 1000

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker, fail whatever is queued or running, free llama.cpp's memory."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("engine %s did not stop within %.1f s", self.name, timeout)
                return
        for seq in self._queue.drain():
            seq.mailbox.fail(EngineClosed())
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        for handle in (self._batch, self._ctx, self._model):
            if handle is not None:
                handle.close()
        self._batch = self._ctx = self._model = None

    @property
    def memory_bytes(self) -> int:
        return self._model.size_bytes if self._model else 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    # ---- what the asyncio side calls ------------------------------------------------------
    def submit(self, request: ChatRequest, loop: asyncio.AbstractEventLoop | None = None) -> SeqState:
        """Queue a request. Raises QueueFull at once when `max_queue` requests already wait."""
        if self.crash is not None:
            raise EngineCrashed(self.name, self.crash.reason)
        if not self.running:
            raise EngineClosed()
        request.validate()
        timeout = resolve_timeout(request.timeout_s, self.config.request_timeout_s)
        seq = SeqState(request=request, mailbox=Mailbox(loop or asyncio.get_running_loop()),
                       deadline=time.perf_counter() + timeout if timeout is not None else None)
        with self._wake:  # close() sets _stopping under this lock: no request slips in after its drain
            if self.crash is not None:
                raise EngineCrashed(self.name, self.crash.reason)
            if self._stopping:
                raise EngineClosed()
            try:
                # Requests that free slots will take at the next step are not waiting: a burst of
                # submissions must not hit max_queue before the worker has had a chance to admit them.
                free_slots = sum(1 for s in self._slots if s.free)
                seq.queue_position = self._queue.put(seq, request.priority, headroom=free_slots)
            except JarvisError:
                self._bus.emit(QueueRecord(self.name, "rejected", len(self._queue)))
                raise
            self._wake.notify()
        return seq

    def cancel(self, seq: SeqState) -> None:
        """Give up on a request; its slot and KV cells are freed at the next step."""
        seq.cancelled = True
        if self._queue.remove(seq):
            seq.mailbox.fail(RequestCancelled())
        with self._wake:
            self._wake.notify()

    async def stream(self, seq: SeqState):
        """Async iterator of Chunks for a submitted request. Abandoning it cancels the request."""
        try:
            while True:
                text, record = await seq.mailbox.get()
                logprobs = seq.mailbox.logprobs if seq.request.options.logprobs else None
                if record is not None:
                    yield Chunk(text=text, done=True, record=record, logprobs=logprobs)
                    return
                if text:
                    yield Chunk(text=text, logprobs=logprobs)
                elif seq.mailbox.queue is not None:
                    yield Chunk(text="", queue=QueuePosition(*seq.mailbox.queue))
        finally:
            if not seq.mailbox.closed:
                self.cancel(seq)

    def embedder(self) -> Embedder:
        """This model's embeddings context and thread, made on first use."""
        with self._wake:
            if self._model is None or self._stopping:
                raise EngineClosed()
            if self._embedder is None:
                self._embedder = Embedder(self._model, self.name, self.threads)
            return self._embedder

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def active_slots(self) -> int:
        return sum(1 for s in self._slots if not s.free)

    @property
    def busy(self) -> bool:
        return self.queue_depth > 0 or self.active_slots > 0

    # ---- the worker thread ----------------------------------------------------------------
    def _run(self) -> None:
        priority.lower_this_thread(self.config)  # below the window's thread, with the ggml workers it starts
        try:
            while True:
                with self._wake:
                    while not self._stopping and len(self._queue) == 0 and self.active_slots == 0:
                        self._wake.wait()
                    if self._stopping:
                        break
                self._step()
        except BaseException as e:  # a bug must not leave callers waiting forever
            log.exception("engine %s worker crashed", self.name)
            self._crashed(e)
        finally:
            for slot in self._slots:
                if slot.sequence is not None:
                    slot.sequence.mailbox.fail(EngineClosed())
                    slot.sequence = None

    def _crashed(self, error: BaseException) -> None:
        """Fail everything running and queued at once (nothing would ever serve or time it out),
        refuse new work, and say so: a ModelRecord for the monitor, `on_crash` for the owner."""
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        crash = EngineCrashed(self.name, reason)
        with self._wake:  # submit() checks `crash` under this lock: nothing is queued after the drain
            self.crash = crash
            self._stopping = True
        waiting = self._queue.drain()
        for slot in self._slots:
            seq = slot.sequence
            if seq is not None:
                with contextlib.suppress(Exception):  # free its sampler; the KV state is dropped with the context
                    self._release(slot, forget=False)
                slot.sequence = None
                seq.mailbox.fail(EngineCrashed(self.name, reason))
        for seq in waiting:
            seq.mailbox.fail(EngineCrashed(self.name, reason))
        self._bus.emit(ModelRecord(self.name, "crashed", reason=reason))
        if self._on_crash is not None:
            try:
                self._on_crash(crash)
            except Exception:
                log.exception("the crash handler of engine %s failed", self.name)

    def _step(self) -> None:
        now = time.perf_counter()
        self._reap(now)
        self._admit()
        batch, ctx = self._batch, self._ctx
        batch.clear()
        wants_logits: list[tuple[Slot, int]] = []
        decode_tokens = prefill_tokens = draft_tokens = 0

        # The next token of every generating slot first: running answers never wait on prompts.
        # With prompt-lookup speculation a greedy slot sends its pending token plus the tokens
        # drafted after it, each with logits; _on_logits keeps the prefix the model agrees with.
        # Only a slot decoding alone drafts: on a CPU a decode costs a fixed part plus a part per
        # token (with logits) that grows about linearly; several slots already share the fixed
        # part, so a draft there only adds per-token cost (README, Performance).
        generating = sum(1 for s in self._slots if s.sequence is not None and s.sequence.pending_token is not None)
        may_draft = self._drafts_allowed and generating == 1
        for slot in self._slots:
            seq = slot.sequence
            if seq is not None and not seq.prefilling and seq.pending_token is not None:
                pos = len(slot.tokens)
                slot.tokens.append(seq.pending_token)
                seq.pending_token = None
                drafted = self._draft(slot, seq) if may_draft else []
                if drafted:
                    idx = batch.add_run([slot.tokens[-1], *drafted], pos, slot.seq_id, True, logits_all=True)
                    idx -= len(drafted)
                    slot.tokens.extend(drafted)
                    seq.draft, seq.draft_pos = drafted, pos
                    self.drafted_tokens += len(drafted)
                else:
                    idx = batch.add(slot.tokens[-1], pos, slot.seq_id, True)
                wants_logits.append((slot, idx))
                decode_tokens += 1
                draft_tokens += len(drafted)
        # Then prompt chunks, oldest admission first, within what is left of the batch.
        budget = min(batch.capacity - len(batch), self.config.prefill_chunk)
        for slot in sorted((s for s in self._slots if s.sequence and s.sequence.prefilling),
                           key=lambda s: s.sequence.admitted_at):
            if budget <= 0:
                break
            seq = slot.sequence
            take = min(budget, len(seq.prompt) - seq.prefilled)
            chunk = seq.prompt[seq.prefilled:seq.prefilled + take]
            last = seq.prefilled + take == len(seq.prompt)
            idx = batch.add_run(chunk, seq.prefilled, slot.seq_id, last)
            if last:
                wants_logits.append((slot, idx))
            slot.tokens.extend(chunk)
            seq.prefilled += take
            budget -= take
            prefill_tokens += take
        if len(batch) == 0:
            return

        t0 = time.perf_counter()
        rc = ctx.decode(batch)
        if rc != 0:
            self._fail_all(rc)
            return
        t1 = time.perf_counter()
        if self.step_hook is not None:
            self.step_hook(self)
        for slot, idx in wants_logits:
            self._on_logits(slot, idx)
        t2 = time.perf_counter()
        phase = self.phase_s
        phase["prepare"] += t0 - now
        phase["decode"] += t1 - t0
        phase["sample"] += t2 - t1
        self.steps += 1
        step_ms = (t2 - t0) * 1000
        self._bus.emit(StepRecord(self.name, self.active_slots, len(self._queue), len(batch),
                                  decode_tokens, prefill_tokens, step_ms, draft_tokens=draft_tokens))

    def _reap(self, now: float) -> None:
        """Free the slots of cancelled or timed-out requests; fail timed-out queued ones."""
        for slot in self._slots:
            seq = slot.sequence
            if seq is None:
                continue
            if seq.cancelled:
                self._release(slot, forget=True)
                seq.mailbox.fail(RequestCancelled())
            elif seq.deadline is not None and now > seq.deadline:
                self._release(slot, forget=True)
                self._time_out(seq)
        for seq in self._queue.snapshot():
            if seq.deadline is not None and now > seq.deadline and self._queue.remove(seq):
                self._time_out(seq)

    def _time_out(self, seq: SeqState) -> None:
        seq.mailbox.fail(RequestTimeout(resolve_timeout(seq.request.timeout_s, self.config.request_timeout_s)))
        self._bus.emit(QueueRecord(self.name, "timeout", len(self._queue)))

    def _admit(self) -> None:
        while any(s.free for s in self._slots):
            seq = self._queue.pop()
            if seq is None:
                return
            if seq.cancelled:
                seq.mailbox.fail(RequestCancelled())
                continue
            truncate = self.config.truncate if seq.request.truncate is None else seq.request.truncate
            try:
                prepared = self._prompts.prepare(seq.request, self.n_ctx_seq, truncate)
            except JarvisError as e:
                seq.mailbox.fail(e)
                continue
            seq.prompt = prepared.tokens
            seq.dropped_turns = prepared.dropped_turns
            sp = seq.request.sampling
            seed = sp.seed if sp.seed >= 0 else random.getrandbits(32)
            try:
                seq.sampler = make_sampler(self._model, sp, seed, seq.request.options)
            except JarvisError as e:
                seq.mailbox.fail(e)
                continue
            slot = max((s for s in self._slots if s.free), key=lambda s: common_prefix(s.tokens, seq.prompt))
            keep = min(common_prefix(slot.tokens, seq.prompt), len(seq.prompt) - 1)
            if not self._ctx.forget(slot.seq_id, keep):
                keep = 0
            del slot.tokens[keep:]
            seq.prefilled = seq.cached_tokens = keep
            seq.decoder = StreamingText(sp.stop)
            seq.admitted_at = time.perf_counter()
            slot.sequence = seq

    def _release(self, slot: Slot, forget: bool) -> None:
        seq = slot.sequence
        slot.sequence = None
        if seq is not None and seq.sampler is not None:
            seq.sampler.close()
        if forget:
            self._ctx.forget(slot.seq_id, 0)
            slot.tokens.clear()

    def _fail_all(self, rc: int) -> None:
        """A failed decode leaves every slot's KV state unknown: fail them all and start clean."""
        log.error("llama_decode returned %d for %s", rc, self.name)
        for slot in list(self._slots):
            if slot.sequence is not None:
                seq = slot.sequence
                self._release(slot, forget=True)
                seq.mailbox.fail(EngineClosed(f"llama.cpp failed to decode (code {rc}); send the request again."))

    def _draft(self, slot: Slot, seq: SeqState) -> list[int]:
        """Tokens guessed from the prompt and answer so far, for a slot whose choice is the
        argmax (greedy, no grammar, no logprobs), within its max_tokens and context."""
        request = seq.request
        if request.sampling.temperature > 0 or request.options.grammar is not None or request.options.logprobs:
            return []
        if seq.draft_pause > 0:
            seq.draft_pause -= 1
            return []
        room = min(seq.draft_len, self.config.lookup_draft, request.sampling.max_tokens - seq.completion_tokens - 1,
                   self.n_ctx_seq - len(slot.tokens) - 2)
        return lookup_draft(slot.tokens, room) if room >= MIN_DRAFT else []

    def _on_logits(self, slot: Slot, idx: int) -> None:
        seq = slot.sequence
        drafted = seq.draft
        if not drafted:
            ended = self._take(seq, seq.sampler.sample(self._ctx, idx), idx, len(slot.tokens))
            if ended:
                self._finish(slot, ended)
            return
        # Verify: the logits at idx + i follow pending + drafted[:i]. Sample them in order (the
        # sampler's penalty window sees exactly the tokens decoding one by one would give it);
        # while the choice equals the draft, that draft token is already in the KV cache.
        seq.draft = []
        pos = seq.draft_pos
        agreed = 0
        ended = None
        for i in range(len(drafted) + 1):
            token = seq.sampler.sample(self._ctx, idx + i)
            ended = self._take(seq, token, idx + i, pos + 1 + i)
            if not ended and i < len(drafted) and token == drafted[i]:
                seq.pending_token = None
                agreed += 1
                continue
            break
        self.accepted_tokens += agreed
        # The next draft's length: a copy that held gets longer, a miss halves it and pauses
        # drafting a few steps. Drafts are right in long runs or not at all, and on a CPU each
        # drafted position costs most of a decode (README, Performance): only likely ones pay.
        if agreed == len(drafted):
            seq.draft_len = min(self.config.lookup_draft, 2 * len(drafted))
        elif agreed == 0:
            seq.draft_len = max(MIN_DRAFT, len(drafted) // 2)
            seq.draft_pause = DRAFT_PAUSE
        keep = pos + 1 + agreed  # the pending token and the agreeing drafts; the rest never happened
        if len(slot.tokens) > keep:
            self._ctx.forget(slot.seq_id, keep)  # never fails here: memories that could refuse never draft
            del slot.tokens[keep:]
        if ended:  # only now: the slot's cells and tokens are final before the request is reported done
            self._finish(slot, ended)

    def _take(self, seq: SeqState, token: int, idx: int, n_kv: int) -> str | None:
        """One sampled token: hand its text over. Returns None when the request goes on (the
        token is then pending: decoded next step), else why it ends ("stop", "length"); the
        caller finishes it. `n_kv` is how many tokens the slot's KV cells hold before it."""
        model = self._model
        now = time.perf_counter()
        if seq.first_token_at == 0.0:
            seq.first_token_at = now
        else:
            seq.token_gaps_ms.append((now - seq.last_token_at) * 1000)
        seq.last_token_at = now

        if model.is_eog(token):
            return "stop"
        if seq.request.options.logprobs:
            seq.mailbox.put_logprobs(read_logprobs(model, self._ctx, idx, token, seq.request.options.top_logprobs))
        seq.completion_tokens += 1
        text = seq.decoder.feed(model.token_bytes(token))
        if text:
            seq.mailbox.put_text(text)
        if seq.decoder.stopped:
            return "stop"
        if seq.completion_tokens >= seq.request.sampling.max_tokens or n_kv + 1 >= self.n_ctx_seq:
            return "length"
        seq.pending_token = token
        return None

    def _finish(self, slot: Slot, reason: str) -> None:
        seq = slot.sequence
        tail = seq.decoder.finish()
        if tail:
            seq.mailbox.put_text(tail)
        end = time.perf_counter()
        decode_s = seq.last_token_at - seq.first_token_at
        request = seq.request
        # The facts only the engine has; the Assistant adds load and cache facts with replace().
        record = RequestRecord(
            request_id=request.request_id,
            model=self.name,
            operation=request.operation,
            source=request.source,
            finish_reason=reason,
            total_ms=(end - seq.submitted_at) * 1000,
            queue_ms=(seq.admitted_at - seq.submitted_at) * 1000,
            prefill_ms=(seq.first_token_at - seq.admitted_at) * 1000,
            ttft_ms=(seq.first_token_at - seq.submitted_at) * 1000,
            decode_tokens_per_s=(seq.completion_tokens - 1) / decode_s if decode_s > 0 and seq.completion_tokens > 1 else 0.0,
            inter_token_ms=tuple(seq.token_gaps_ms),
            prompt_tokens=len(seq.prompt),
            cached_prompt_tokens=seq.cached_tokens,
            completion_tokens=seq.completion_tokens,
            dropped_turns=seq.dropped_turns,
            constrained=request.options.grammar.label if request.options.grammar else "",
        )
        self._release(slot, forget=False)  # keep the KV cells: the next turn may reuse them
        seq.mailbox.finish(record)
