"""Owners of llama.cpp's raw pointers: each wraps one handle and frees it exactly once.

Only a model's worker thread touches its context, batch and samplers; the model (weights and
vocabulary) is read-only after load, so tokenizing from another thread is safe.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
from pathlib import Path

import llama_cpp as ll
import numpy as np

from jarvis.engine.backend import ensure_backend, extra_buffers_allowed, supports_gpu_offload
from jarvis.errors import ModelLoadError


def _address_of_logits():
    """llama_get_logits as a call that returns a plain address and keeps the GIL: it returns at
    once (a CPU context has nothing to wait for), and right after a decode, with the CPU caches
    cold, ctypes' pointer object and its GIL release and re-acquire cost more than the call."""
    try:
        fn = ctypes.PyDLL(ll.llama_cpp._lib._name).llama_get_logits
    except (AttributeError, OSError):  # another llama_cpp layout: the ordinary binding, as an address
        return lambda ctx: ctypes.cast(ll.llama_get_logits(ctx), ctypes.c_void_p).value
    fn.argtypes = (ctypes.c_void_p,)
    fn.restype = ctypes.c_void_p
    return fn


_logits_address = _address_of_logits()


class LlamaModel:
    """Weights + vocabulary of one GGUF file."""

    def __init__(self, path: Path, gpu_layers: int = 0, extra_buffers: bool | None = None):
        ensure_backend()
        params = ll.llama_model_default_params()
        params.n_gpu_layers = gpu_layers if gpu_layers >= 0 else 2**31 - 1
        # No GPU layers: no GPU at all. Left at its default (every device), a CUDA build still made
        # a CUDA context and sent prompt batches' matrix products to the GPU (op offload) with 0
        # layers asked, so gpu.use_gpu = false ran on the GPU in part, and its texts differed from
        # a CPU build's (measured on an H200). An empty NULL-terminated device list is the CPU alone.
        if gpu_layers == 0:
            no_devices = (ctypes.c_void_p * 1)(None)  # alive until the load below has read it
            params.devices = ctypes.addressof(no_devices)
        # AMX's kernels segfault (backend.py): engine.weight_repacking decides, "auto" by the build
        params.use_extra_bufts = extra_buffers_allowed() if extra_buffers is None else extra_buffers
        self.path = Path(path)
        ptr = ll.llama_model_load_from_file(str(self.path).encode(), params)
        if not ptr:
            raise ModelLoadError(self.path, "llama.cpp could not load it (unsupported architecture or corrupt data)")
        self._ptr = ptr
        self.vocab = ll.llama_model_get_vocab(ptr)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = ll.llama_model_n_ctx_train(ptr)
        self.size_bytes = int(ll.llama_model_size(ptr))
        self.n_params = int(ll.llama_model_n_params(ptr))
        self.bos_id = ll.llama_vocab_bos(self.vocab)
        self.eos_id = ll.llama_vocab_eos(self.vocab)
        self.add_bos = bool(ll.llama_vocab_get_add_bos(self.vocab))
        self.recurrent = bool(ll.llama_model_is_recurrent(ptr) or ll.llama_model_is_hybrid(ptr))
        self.sliding_window = int(ll.llama_model_n_swa(ptr))  # 0: every layer attends to the whole context
        # What llama.cpp counts in "offloaded N/M layers to GPU": the repeating layers and the output one.
        self.offloadable_layers = int(ll.llama_model_n_layer(ptr)) + 1
        # On the GPU, by llama.cpp's rule (llama-model.cpp: none without a GPU device, else
        # min(n_gpu_layers, n_layer + 1)). llama_supports_gpu_offload looks for a usable device, not
        # only for a GPU build: a CUDA build that sees no GPU offloads nothing.
        if gpu_layers == 0 or not supports_gpu_offload():
            self.offloaded_layers = 0
        else:
            self.offloaded_layers = min(gpu_layers if gpu_layers > 0 else self.offloadable_layers,
                                        self.offloadable_layers)
        # Filled as tokens are generated: the worker reads a token's bytes and whether it ends
        # generation from plain Python containers instead of two ctypes calls per token. Filling
        # them for the whole vocabulary at load cost 60-120 ms of every start-up (49k tokens), for
        # the few thousand tokens a session ever generates. A race between threads writes the same value.
        self._pieces: list[bytes | None] = [None] * self.n_vocab
        self._eog: dict[int, bool] = {}

    @property
    def ptr(self):
        if self._ptr is None:
            raise RuntimeError("model already freed")
        return self._ptr

    def close(self) -> None:
        if self._ptr is not None:
            ll.llama_model_free(self._ptr)
            self._ptr = None

    # ---- vocabulary -----------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (ll.llama_token * capacity)()
        n = ll.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:  # too small: llama.cpp returns minus the size it needs
            capacity = -n
            buf = (ll.llama_token * capacity)()
            n = ll.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        tokens = list(buf[:n])
        # A template that writes its own BOS plus the vocabulary's add_bos gives two; keep one.
        if len(tokens) >= 2 and tokens[0] == tokens[1] == self.bos_id:
            tokens = tokens[1:]
        return tokens

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        if not special and 0 <= token < self.n_vocab:
            piece = self._pieces[token]
            if piece is None:
                piece = self._pieces[token] = self._token_bytes(token, False)
            return piece
        return self._token_bytes(token, special)

    def _token_bytes(self, token: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def token_text(self, token: int) -> str:
        return self.token_bytes(token, special=True).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        eog = self._eog.get(token)
        if eog is None:
            eog = self._eog[token] = bool(ll.llama_vocab_is_eog(self.vocab, token))
        return eog

    @functools.cached_property
    def eog_ids(self) -> frozenset[int]:
        """Every token that ends generation (a walk over the vocabulary: made on first use)."""
        return frozenset(t for t in range(self.n_vocab) if self.is_eog(t))


UBATCH_MAX = 512  # llama-server's default n_ubatch (-ub)


def ubatch_of(n_batch: int) -> int:
    """The physical batch llama.cpp computes at once: a step of up to n_batch prompt tokens runs
    as ubatches of at most 512, as llama-server's defaults do (-b 2048 -ub 512); a larger ubatch
    only grows the compute buffer."""
    return min(n_batch, UBATCH_MAX)


class LlamaContext:
    """One llama context with `n_seq` sequences (slots), each `n_ctx_seq` tokens long."""

    def __init__(self, model: LlamaModel, n_seq: int, n_ctx_seq: int, n_batch: int, n_threads: int):
        params = ll.llama_context_default_params()
        params.n_ctx = n_ctx_seq * n_seq
        params.n_batch = n_batch
        params.n_ubatch = ubatch_of(n_batch)
        params.n_seq_max = n_seq
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.kv_unified = False  # each slot gets its own n_ctx_seq cells
        params.no_perf = True
        ptr = ll.llama_init_from_model(model.ptr, params)
        if not ptr:
            raise ModelLoadError(model.path, f"llama.cpp could not create a context of {params.n_ctx} tokens "
                                             "(not enough memory? lower engine.context_length)")
        self._ptr = ptr
        self.memory = ll.llama_get_memory(ptr)
        self.n_seq = n_seq
        self.n_ctx_seq = int(ll.llama_n_ctx_seq(ptr))
        self.n_vocab = model.n_vocab
        self._decoded: Batch | None = None  # the batch of the last decode, for its logits' rows
        self._logits: np.ndarray | None = None  # that decode's logits, once read
        self._views: dict[tuple[int, int], np.ndarray] = {}  # (address, rows) -> a view of that buffer

    @property
    def ptr(self):
        if self._ptr is None:
            raise RuntimeError("context already freed")
        return self._ptr

    def decode(self, batch: "Batch") -> int:
        self._decoded, self._logits = batch, None
        return ll.llama_decode(self.ptr, batch.raw)

    def logits_row(self, batch_index: int) -> np.ndarray:
        """The last decode's logits for the token at `batch_index`: a numpy view of llama.cpp's
        own buffer, no copy. The buffer is read once per decode (llama_get_logits: one row per
        token with logits on, in batch order), not with one llama_get_logits_ith per slot; it
        stays valid until the next decode."""
        batch = self._decoded
        if batch is None:
            raise RuntimeError("no decode yet")
        logits = self._logits
        if logits is None:
            key = (_logits_address(self.ptr), batch.n_outputs)
            if not key[0] or not key[1]:
                raise RuntimeError("the last decode produced no logits")
            logits = self._views.get(key)
            if logits is None:  # a new buffer (llama.cpp grew it) or a new number of rows
                if len(self._views) > 16:  # never in practice: a few row counts, one address
                    self._views.clear()
                cells = (ctypes.c_float * (key[1] * self.n_vocab)).from_address(key[0])
                logits = self._views[key] = np.frombuffer(cells, dtype=np.float32).reshape(key[1], self.n_vocab)
            self._logits = logits
        return logits[batch.output_row(batch_index)]

    def forget(self, seq_id: int, from_pos: int = 0) -> bool:
        """Drop a sequence's KV cells from `from_pos` on. Some memories (recurrent models) cannot
        drop part of a sequence: then the whole of it goes, and this returns False."""
        if ll.llama_memory_seq_rm(self.memory, seq_id, from_pos, -1):
            return True
        ll.llama_memory_seq_rm(self.memory, seq_id, 0, -1)
        return False

    def save_sequence(self, seq_id: int) -> ctypes.Array | None:
        """A copy of the sequence's KV cells (positions and data) in host memory, for
        `restore_sequence` into any sequence of this context later; None when llama.cpp could not
        write it.

        The copy lands in an anonymous mapping of its own, which the kernel zeroes page by page as
        llama.cpp's copy first touches it, with the GIL released. A ctypes array is zero-filled
        by Python with the GIL held: for a 2,100-token prompt (~50 MB) 25-30 ms in a bare process
        and 144-210 ms in jarvis serve on a VM whose fresh memory is slow, during which the loop
        (or the desktop's window) could do nothing. Not numpy: it asks for huge pages on large
        buffers, and with the kernel's usual THP setting (defrag=madvise) that stalls the first
        touch in memory compaction (112-128 ms against 25-30 here)."""
        size = ll.llama_state_seq_get_size_ext(self.ptr, seq_id, 0)
        if not size:
            return None
        pages = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        state = (ctypes.c_uint8 * size).from_buffer(pages)  # keeps `pages` alive; unmapped with it
        if ll.llama_state_seq_get_data_ext(self.ptr, state, size, seq_id, 0) != size:
            return None
        return state

    def restore_sequence(self, seq_id: int, state: ctypes.Array) -> bool:
        """Replace the sequence's cells with a saved copy. False (and the sequence empty) when
        llama.cpp refused it."""
        if ll.llama_state_seq_set_data_ext(self.ptr, state, len(state), seq_id, 0) == len(state):
            return True
        ll.llama_memory_seq_rm(self.memory, seq_id, 0, -1)
        return False

    def close(self) -> None:
        if self._ptr is not None:
            self._views.clear()
            self._decoded = self._logits = None
            ll.llama_free(self._ptr)
            self._ptr = None


class Batch:
    """A reusable llama_batch of up to `capacity` tokens, one sequence id per token.

    Its arrays are written through numpy views (one slice assignment for a whole prompt chunk)
    rather than one ctypes write per field per token. llama_batch_init gives every token its own
    one-element seq_id array; here seq_id[i] points into one contiguous int32 array instead, so
    the sequence ids of a chunk are one slice too. The original pointers are put back before
    llama_batch_free, which frees them.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.raw = ll.llama_batch_init(capacity, 0, 1)
        self._freed = False
        self.raw.n_tokens = 0
        self._n = 0
        self.n_outputs = 0  # tokens with logits on: llama.cpp's output rows
        self._rows: dict[int, int] = {}  # batch index -> its output row
        self.token = np.ctypeslib.as_array(self.raw.token, shape=(capacity,))
        self.pos = np.ctypeslib.as_array(self.raw.pos, shape=(capacity,))
        self.logits = np.ctypeslib.as_array(ctypes.cast(self.raw.logits, ctypes.POINTER(ctypes.c_int8)), shape=(capacity,))
        np.ctypeslib.as_array(self.raw.n_seq_id, shape=(capacity,))[:] = 1
        self.seq = np.zeros(capacity, dtype=np.int32)
        # seq_id as an array of addresses (ctypes' own indexing would alias, not copy, them)
        self._seq_ptrs = np.ctypeslib.as_array(ctypes.cast(self.raw.seq_id, ctypes.POINTER(ctypes.c_size_t)),
                                               shape=(capacity,))
        self._own_seq_ptrs = self._seq_ptrs.copy()
        self._seq_ptrs[:] = self.seq.ctypes.data + self.seq.itemsize * np.arange(capacity, dtype=np.uintp)

    def clear(self) -> None:
        self._n = self.raw.n_tokens = self.n_outputs = 0
        self._rows.clear()

    def output_row(self, index: int) -> int:
        """Where the logits of the token at `index` are among the decode's output rows."""
        return self._rows[index]

    def _outputs(self, first: int, end: int) -> None:
        for i in range(first, end):
            self._rows[i] = self.n_outputs
            self.n_outputs += 1

    def __len__(self) -> int:
        return self._n

    def add(self, token: int, pos: int, seq_id: int, want_logits: bool) -> int:
        """Append a token; returns its index in the batch (where its logits land)."""
        i = self._n
        if i >= self.capacity:
            raise OverflowError("batch full")
        self.token[i] = token
        self.pos[i] = pos
        self.seq[i] = seq_id
        self.logits[i] = want_logits
        if want_logits:
            self._rows[i] = self.n_outputs
            self.n_outputs += 1
        self._n = self.raw.n_tokens = i + 1
        return i

    def add_run(self, tokens, first_pos: int, seq_id: int, logits_last: bool, logits_all: bool = False) -> int:
        """Append consecutive tokens of one sequence at positions first_pos, first_pos + 1, ...;
        logits for the last one, or for every one (a speculative draft is verified at each).
        Returns the index of the last one."""
        i, n = self._n, len(tokens)
        if i + n > self.capacity:
            raise OverflowError("batch full")
        end = i + n
        self.token[i:end] = tokens
        self.pos[i:end] = np.arange(first_pos, first_pos + n, dtype=np.int32)
        self.seq[i:end] = seq_id
        self.logits[i:end] = 1 if logits_all else 0
        if logits_all:
            self._outputs(i, end)
        elif logits_last:
            self.logits[end - 1] = 1
            self._outputs(end - 1, end)
        self._n = self.raw.n_tokens = end
        return end - 1

    def close(self) -> None:
        if not self._freed:
            self._seq_ptrs[:] = self._own_seq_ptrs  # llama_batch_free frees what it allocated
            ll.llama_batch_free(self.raw)
            self._freed = True


PENALTY_LAST_N = 64  # the penalties look at the last 64 sampled tokens


def penalties_first(sampling) -> bool:
    """Whether the penalties must see the whole vocabulary (the chain's exact order), or may run
    on a top-k cut that cannot change the result.

    The penalties touch at most PENALTY_LAST_N distinct tokens. When they can only LOWER a logit
    (repeat_penalty >= 1, frequency and presence penalties >= 0), a token outside the raw top
    k + PENALTY_LAST_N can never rise into the top k after them: at most PENALTY_LAST_N tokens
    above it could have dropped below it. So top-k(k + 64) -> penalties -> top-k(k) keeps exactly
    the set that penalties -> top-k(k) keeps (exact float ties aside), and greedy needs only the
    top 65. llama.h advises this order; the penalties then look at 104 candidates instead of
    ~49k (one hash lookup each). Penalties that may RAISE a logit (repeat_penalty < 1, negative
    presence or frequency) keep the exact order, and so does sampling without top-k."""
    lowers_only = sampling.repeat_penalty >= 1.0 and sampling.frequency_penalty >= 0 and sampling.presence_penalty >= 0
    return not lowers_only or (sampling.temperature > 0 and sampling.top_k <= 0)


class SamplerChain:
    """A per-request llama.cpp sampler chain: penalties -> top-k -> top-p -> min-p -> temp -> dist,
    or greedy; with a cut before the penalties when that cannot change the result (penalties_first)."""

    def __init__(self, model: LlamaModel, sampling, seed: int):
        chain_params = ll.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self._ptr = ll.llama_sampler_chain_init(chain_params)
        add = lambda s: ll.llama_sampler_chain_add(self._ptr, s)  # noqa: E731 - the chain owns each sampler
        self.order: list[str] = []  # what the chain holds, for tests and the bench
        penalised = sampling.repeat_penalty != 1.0 or sampling.frequency_penalty or sampling.presence_penalty
        if penalised:
            if not penalties_first(sampling):
                cut = (sampling.top_k if sampling.temperature > 0 else 1) + PENALTY_LAST_N
                add(ll.llama_sampler_init_top_k(cut))
                self.order.append(f"top_k({cut})")
            add(ll.llama_sampler_init_penalties(model.n_vocab, PENALTY_LAST_N, sampling.repeat_penalty,
                                                sampling.frequency_penalty, sampling.presence_penalty))
            self.order.append("penalties")
        # Greedy and nothing before it: the pick is the first index of the largest logit, which
        # numpy reads from llama.cpp's logits row in place (~5 us) instead of llama_sampler_sample
        # copying 49k candidates first (~55 us per token per slot). The greedy sampler holds no
        # state, so skipping the chain for it changes nothing; it stays in the chain for accept().
        self.argmax_only = False
        if sampling.temperature <= 0:
            add(ll.llama_sampler_init_greedy())
            self.order.append("greedy")
            self.argmax_only = self.order == ["greedy"]
            return
        if sampling.top_k > 0:
            add(ll.llama_sampler_init_top_k(sampling.top_k))
            self.order.append(f"top_k({sampling.top_k})")
        if sampling.top_p < 1.0:
            add(ll.llama_sampler_init_top_p(sampling.top_p, 1))
            self.order.append("top_p")
        if sampling.min_p > 0:
            add(ll.llama_sampler_init_min_p(sampling.min_p, 1))
            self.order.append("min_p")
        add(ll.llama_sampler_init_temp(sampling.temperature))
        add(ll.llama_sampler_init_dist(seed))
        self.order += ["temp", "dist"]

    @property
    def ptr(self):
        return self._ptr

    def sample(self, ctx: LlamaContext, batch_index: int) -> int:
        """Sample from the logits at `batch_index` of the last decode; the chain also accepts the token."""
        if self.argmax_only:
            return int(ctx.logits_row(batch_index).argmax())
        return ll.llama_sampler_sample(self._ptr, ctx.ptr, batch_index)

    def accept(self, token: int) -> bool:
        """`token` is taken without sampling (a forced one): the chain's penalties see it."""
        ll.llama_sampler_accept(self._ptr, token)
        return True

    def close(self) -> None:
        if self._ptr is not None:
            ll.llama_sampler_free(self._ptr)
            self._ptr = None
