"""One loaded model: a worker thread that owns one llama context with N slots and decodes every
active slot together in one `llama_decode` per step (continuous batching, as llama-server's
parallel slots do).

This module is the thread owner: load and close, the async face (submit / stream / cancel), the
crash policy, and the step loop. Each step: cancelled or timed-out requests give their slot back;
waiting requests take free slots (the one sharing the longest prefix with their prompt, or cells
restored from the prompt cache when a saved prompt shares more: prompt_cache.py); the
scheduler's plan (scheduler.py) fills one batch with the next token of every generating slot
plus a chunk of any prompt being prefilled; then each slot that produced logits samples its next
token, verifying drafts (speculation.py), and hands text back through its mailbox. A finished
request's neutral Timings come from its SeqState (sequence.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from jarvis.engine import affinity, priority
from jarvis.engine.config import EngineConfig
from jarvis.engine.embedder import Embedder
from jarvis.engine.grammar import make_sampler
from jarvis.engine.handles import Batch, LlamaContext, LlamaModel
from jarvis.engine.logprobs import read_logprobs
from jarvis.engine.mailbox import Mailbox, StepWaker
from jarvis.engine.early_open import EarlyOpen
from jarvis.engine.opening import OpenSpec, open_model
from jarvis.engine.prompt import PromptBuilder
from jarvis.engine.prompt_cache import MIB, PromptCache
from jarvis.request_queue import PriorityRequestQueue
from jarvis.engine.scheduler import plan_step
from jarvis.engine.sequence import SeqState, Slot, common_prefix
from jarvis.engine.speculation import DraftPolicy
from jarvis.engine.step_tally import StepTally
from jarvis.engine.text import StreamingText
from jarvis.engine.thinking import CloseTags, ThinkingBudget
from jarvis.errors import EngineClosed, EngineCrashed, JarvisError, RequestCancelled, RequestTimeout
from jarvis.request import ChatRequest, Chunk, QueuePosition, resolve_timeout
from jarvis.telemetry import ModelRecord, QueueRecord, RecordBus

log = logging.getLogger("jarvis.engine")


def prepare_compute_thread(config: EngineConfig, threads: int) -> dict[int, int] | None:
    """Set up the calling thread to run llama_decode, before its first one: below the window's
    priority (engine.worker_nice), with the ggml workers it starts, and one core per compute thread
    where they fill every core (affinity.py). Returns the OpenMP thread -> core map where pinned."""
    priority.lower_this_thread(config)
    return affinity.pin_compute_threads(threads) if config.pin_threads else None


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
        self.waker = StepWaker()  # the loop is woken once per step for every stream (mailbox.py)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._model: LlamaModel | None = None
        self._ctx: LlamaContext | None = None
        self._batch: Batch | None = None
        self._slots: list[Slot] = []
        self._embedder: Embedder | None = None
        self.load_ms = 0.0
        self.offload_note = ""
        self.n_ctx_seq = 0
        self.crash: EngineCrashed | None = None  # set when the worker died; the engine takes nothing more
        self._on_crash = on_crash
        # Tests inject a deterministic fault here: called on the worker inside every step, between
        # llama_decode and sampling, with the engine. Whatever it raises crashes the worker.
        self.step_hook: Callable[["Engine"], None] | None = None
        self._drafts = DraftPolicy(config.lookup_draft, allowed=False)  # set at load
        self.threads = 1  # llama.cpp's threads for this context, set at load
        self.pinned_cores: dict[int, int] | None = None  # OpenMP thread -> core, where pinned (affinity.py)
        self._tally = StepTally(name)  # the steps between two StepRecords (step_tally.py)
        self.prompt_cache = PromptCache(0)  # set at load (prompt_cache.py)

    # ---- life cycle (call load() off the event loop: it takes a while) --------------------
    def load(self, early: EarlyOpen | None = None) -> None:
        """Open the model and start the worker. `early`: an open begun ahead of this engine
        (opening.py), taken when it is exactly the open this engine would make."""
        t0 = time.perf_counter()
        cfg = self.config
        spec, self.offload_note = OpenSpec.for_engine(self.path, cfg)
        opened = (early.take(spec) if early is not None else None) or open_model(spec)
        self._model, self._ctx = opened.model, opened.ctx
        self.threads = spec.n_threads
        self.n_ctx_seq = self._ctx.n_ctx_seq
        # A rejected draft's cells must go while the rest of the sequence stays: recurrent and
        # hybrid memories cannot drop part of a sequence, so they never draft.
        self._drafts = DraftPolicy(cfg.lookup_draft, allowed=not self._model.recurrent)
        # Saved cells are restored and then cut to the shared prefix: the same rule as drafts, and
        # a sliding-window cache saves only its window, so a cut below it would leave a gap.
        partial_ok = not self._model.recurrent and not self._model.sliding_window
        self.prompt_cache = PromptCache(cfg.prompt_cache_mb * MIB if partial_ok else 0)
        self._batch = Batch(spec.n_batch)
        self._prompts = PromptBuilder(self._model, self._chat_template)
        model = self._model
        self._close_tags = CloseTags(lambda text: model.tokenize(text, add_special=False, parse_special=True))
        self._slots = [Slot(seq_id=i) for i in range(cfg.batch_size)]
        self._thread = threading.Thread(target=self._run, name=f"engine:{self.name}", daemon=True)
        self._thread.start()
        self.load_ms = (time.perf_counter() - t0) * 1000

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the worker, fail whatever is queued or running, free llama.cpp's memory. False
        when the worker did not stop within `timeout` (stuck inside llama.cpp): its handles are
        then kept, since freeing a context a thread still uses would crash the process."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("engine %s did not stop within %.1f s; its memory stays allocated", self.name, timeout)
                return False
        for seq in self._queue.drain():
            seq.mailbox.fail(EngineClosed())
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        self.prompt_cache.clear()
        for handle in (self._batch, self._ctx, self._model):
            if handle is not None:
                handle.close()
        self._batch = self._ctx = self._model = None
        return True

    @property
    def drafted_tokens(self) -> int:
        """Prompt-lookup drafts sent to llama_decode to be verified, since load."""
        return self._drafts.drafted_tokens

    @property
    def accepted_tokens(self) -> int:
        """Of those, the ones the model agreed with (kept)."""
        return self._drafts.accepted_tokens

    @property
    def memory_bytes(self) -> int:
        return self._model.size_bytes if self._model else 0

    @property
    def gpu_layers(self) -> int:
        """Layers on the GPU, as llama.cpp counts them (its repeating layers and the output one)."""
        return self._model.offloaded_layers if self._model else 0

    @property
    def model_layers(self) -> int:
        """Of this many (0 until loaded)."""
        return self._model.offloadable_layers if self._model else 0

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
        pace_ms = self.config.stream_interval_ms if request.stream_interval_ms is None else request.stream_interval_ms
        mailbox = Mailbox(loop or asyncio.get_running_loop(), self.waker, pace_ms / 1000, whole=request.whole_reply)
        seq = SeqState(request=request, mailbox=mailbox,
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
                text, timings = await seq.mailbox.get()
                logprobs = seq.mailbox.logprobs if seq.request.options.logprobs else None
                if timings is not None:
                    yield Chunk(text=text, done=True, timings=timings, logprobs=logprobs)
                    return
                if text:
                    yield Chunk(text=text, logprobs=logprobs)
                elif seq.mailbox.queue is not None:
                    yield Chunk(text="", queue=QueuePosition(*seq.mailbox.queue))
        finally:
            if not seq.mailbox.closed:
                self.cancel(seq)

    def count_tokens(self, request: ChatRequest) -> int:
        """The prompt's tokens, template applied, nothing generated. Tokenizing only reads the
        vocabulary, so any thread may call it (never the asyncio loop: it is a llama.cpp call)."""
        if self._model is None or self._stopping:
            raise EngineClosed()
        request.validate()
        return self._prompts.count(request)

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
        self.pinned_cores = prepare_compute_thread(self.config, self.threads)
        # This thread's wake-ups of the loop wait for a flush: one per step, just before its decode
        # (_step), and before the worker sleeps; what is still held goes when it ends.
        with self.waker.hold():
            try:
                while True:
                    with self._wake:
                        while not self._stopping and len(self._queue) == 0 and self.active_slots == 0:
                            self.waker.flush(force=True)  # paced text too: no step comes to send it
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
        self._reap(time.perf_counter())
        self._admit()
        batch = self._batch
        plan = plan_step(self._slots, batch, self.config.prefill_chunk, self._drafts, self.n_ctx_seq)
        # The text sampled in the last step goes to the loop now, with the next batch already
        # planned: the loop's Python runs during the decode below, which holds no GIL. Paced text
        # that is not due waits for a later step, unless this one prefills (a long decode).
        self.waker.flush(force=plan.prefill_tokens > 0)
        if len(batch) == 0:
            return
        t0 = time.perf_counter()
        rc = self._ctx.decode(batch)
        if rc != 0:
            self._fail_all(rc)
            return
        if plan.prefill_tokens == 0:  # what a decode of this width costs here decides the drafts
            self._drafts.observe_decode(len(batch), (time.perf_counter() - t0) * 1000)
        if self.step_hook is not None:
            self.step_hook(self)
        for slot, idx in plan.wants_logits:
            self._on_logits(slot, idx)
        now = time.perf_counter()
        record = self._tally.add(plan, (now - t0) * 1000, self.active_slots, len(self._queue), now)
        if record is not None:
            self._bus.emit(record)

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
        if len(self._queue) == 0:  # the common case, on every step's critical path
            return
        for seq in self._queue.snapshot():
            if seq.deadline is not None and now > seq.deadline and self._queue.remove(seq):
                self._time_out(seq)

    def _time_out(self, seq: SeqState) -> None:
        seq.mailbox.fail(RequestTimeout(resolve_timeout(seq.request.timeout_s, self.config.request_timeout_s)))
        self._bus.emit(QueueRecord(self.name, "timeout", len(self._queue)))

    def _admit(self) -> None:
        while len(self._queue) and any(s.free for s in self._slots):
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
            slot, shared = max(((s, common_prefix(s.tokens, seq.prompt)) for s in self._slots if s.free),
                               key=lambda pair: pair[1])
            keep = self._reuse(slot, seq.prompt, min(shared, len(seq.prompt) - 1))
            if not self._ctx.forget(slot.seq_id, keep):
                keep = 0
            del slot.tokens[keep:]
            seq.prefilled = seq.cached_tokens = keep
            seq.decoder = StreamingText(sp.stop)
            seq.thinking = ThinkingBudget(seq.request.options.reasoning_budget, self._close_tags)
            seq.admitted_at = time.perf_counter()
            slot.sequence = seq

    def _reuse(self, slot: Slot, prompt: list[int], keep: int) -> int:
        """How many of the prompt's first tokens the slot's cells hold for it (never the last one:
        its logits are needed): `keep`, those it shares already, or a longer prefix restored from
        the prompt cache. Before the slot loses most of its cells, or all of them to a restore,
        they are saved there (prompt_cache.py)."""
        cache = self.prompt_cache
        if not cache.enabled:
            return keep
        found = cache.best(np.asarray(prompt[:-1], dtype=np.int32), keep)
        if found is None and 2 * keep >= len(slot.tokens):
            return keep  # the slot keeps most of what it holds: nothing worth saving is lost
        held = np.asarray(slot.tokens, dtype=np.int32)
        if cache.worth_saving(held):
            state = self._ctx.save_sequence(slot.seq_id)
            if state is not None:
                cache.put(held, state)
        if found is None:
            return keep
        saved, shared = found
        if not self._ctx.restore_sequence(slot.seq_id, saved.state):
            slot.tokens.clear()  # the sequence is empty now: prefill from the start
            return 0
        slot.tokens[:] = saved.tokens.tolist()
        cache.restored(shared)
        return shared

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

    def _on_logits(self, slot: Slot, idx: int) -> None:
        seq = slot.sequence
        drafted = seq.draft
        if not drafted:
            ended = self._take(seq, self._choose(seq, idx), idx, len(slot.tokens))
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
            token = self._choose(seq, idx + i)
            ended = self._take(seq, token, idx + i, pos + 1 + i)
            if not ended and i < len(drafted) and token == drafted[i]:
                seq.pending_token = None
                agreed += 1
                continue
            break
        self._drafts.verified(seq, len(drafted), agreed)
        keep = pos + 1 + agreed  # the pending token and the agreeing drafts; the rest never happened
        if len(slot.tokens) > keep:
            self._ctx.forget(slot.seq_id, keep)  # never fails here: memories that could refuse never draft
            del slot.tokens[keep:]
        if ended:  # only now: the slot's cells and tokens are final before the request is reported done
            self._finish(slot, ended)

    def _choose(self, seq: SeqState, idx: int) -> int:
        """The sequence's next token: the next one of `</think>` when its thinking budget is spent
        (and its grammar, if any, allows it), else sampled from the logits at `idx`."""
        forced = seq.thinking.forced()
        if forced is not None and seq.sampler.accept(forced):
            return forced
        return seq.sampler.sample(self._ctx, idx)

    def _take(self, seq: SeqState, token: int, idx: int, n_kv: int) -> str | None:
        """One sampled token: hand its text over. Returns None when the request goes on (the
        token is then pending: decoded next step), else why it ends ("stop", "length"); the
        caller finishes it. `n_kv` is how many tokens the slot's KV cells hold before it."""
        model = self._model
        seq.token_at(time.perf_counter())

        if model.is_eog(token):
            return "stop"
        if seq.request.options.logprobs:
            seq.mailbox.put_logprobs(read_logprobs(model, self._ctx, idx, token, seq.request.options.top_logprobs))
        seq.completion_tokens += 1
        piece = model.token_bytes(token)
        seq.thinking.took(token, piece)
        text = seq.decoder.feed(piece)
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
        self._release(slot, forget=False)  # keep the KV cells: the next turn may reuse them
        seq.mailbox.finish(seq.timings(reason))
