"""Owners of llama.cpp's raw pointers: each wraps one handle and frees it exactly once.

Only a model's worker thread touches its context, batch and samplers; the model (weights and
vocabulary) is read-only after load, so tokenizing from another thread is safe.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp as ll

from jarvis.engine.backend import ensure_backend
from jarvis.errors import ModelLoadError


class LlamaModel:
    """Weights + vocabulary of one GGUF file."""

    def __init__(self, path: Path, gpu_layers: int = 0):
        ensure_backend()
        params = ll.llama_model_default_params()
        params.n_gpu_layers = gpu_layers if gpu_layers >= 0 else 2**31 - 1
        self.path = Path(path)
        self.gpu_layers = gpu_layers
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
        buf = ctypes.create_string_buffer(64)
        n = ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def token_text(self, token: int) -> str:
        return self.token_bytes(token, special=True).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(ll.llama_vocab_is_eog(self.vocab, token))


class LlamaContext:
    """One llama context with `n_seq` sequences (slots), each `n_ctx_seq` tokens long."""

    def __init__(self, model: LlamaModel, n_seq: int, n_ctx_seq: int, n_batch: int, n_threads: int):
        params = ll.llama_context_default_params()
        params.n_ctx = n_ctx_seq * n_seq
        params.n_batch = n_batch
        params.n_ubatch = n_batch
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

    @property
    def ptr(self):
        if self._ptr is None:
            raise RuntimeError("context already freed")
        return self._ptr

    def decode(self, batch: "Batch") -> int:
        return ll.llama_decode(self.ptr, batch.raw)

    def forget(self, seq_id: int, from_pos: int = 0) -> bool:
        """Drop a sequence's KV cells from `from_pos` on. Some memories (recurrent models) cannot
        drop part of a sequence: then the whole of it goes, and this returns False."""
        if ll.llama_memory_seq_rm(self.memory, seq_id, from_pos, -1):
            return True
        ll.llama_memory_seq_rm(self.memory, seq_id, 0, -1)
        return False

    def close(self) -> None:
        if self._ptr is not None:
            ll.llama_free(self._ptr)
            self._ptr = None


class Batch:
    """A reusable llama_batch of up to `capacity` tokens, one sequence id per token."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.raw = ll.llama_batch_init(capacity, 0, 1)
        self._freed = False
        self.raw.n_tokens = 0

    def clear(self) -> None:
        self.raw.n_tokens = 0

    def __len__(self) -> int:
        return self.raw.n_tokens

    def add(self, token: int, pos: int, seq_id: int, want_logits: bool) -> int:
        """Append a token; returns its index in the batch (where its logits land)."""
        i = self.raw.n_tokens
        if i >= self.capacity:
            raise OverflowError("batch full")
        self.raw.token[i] = token
        self.raw.pos[i] = pos
        self.raw.n_seq_id[i] = 1
        self.raw.seq_id[i][0] = seq_id
        self.raw.logits[i] = want_logits
        self.raw.n_tokens = i + 1
        return i

    def close(self) -> None:
        if not self._freed:
            ll.llama_batch_free(self.raw)
            self._freed = True


class SamplerChain:
    """A per-request llama.cpp sampler chain (penalties -> top-k -> top-p -> min-p -> temp -> dist)."""

    def __init__(self, model: LlamaModel, sampling, seed: int):
        chain_params = ll.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self._ptr = ll.llama_sampler_chain_init(chain_params)
        add = lambda s: ll.llama_sampler_chain_add(self._ptr, s)  # noqa: E731 - the chain owns each sampler
        if (sampling.repeat_penalty != 1.0 or sampling.frequency_penalty or sampling.presence_penalty):
            add(ll.llama_sampler_init_penalties(model.n_vocab, 64, sampling.repeat_penalty,
                                                sampling.frequency_penalty, sampling.presence_penalty))
        if sampling.temperature <= 0:
            add(ll.llama_sampler_init_greedy())
            return
        if sampling.top_k > 0:
            add(ll.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            add(ll.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0:
            add(ll.llama_sampler_init_min_p(sampling.min_p, 1))
        add(ll.llama_sampler_init_temp(sampling.temperature))
        add(ll.llama_sampler_init_dist(seed))

    @property
    def ptr(self):
        return self._ptr

    def sample(self, ctx: LlamaContext, batch_index: int) -> int:
        """Sample from the logits at `batch_index` of the last decode; the chain also accepts the token."""
        return ll.llama_sampler_sample(self._ptr, ctx.ptr, batch_index)

    def close(self) -> None:
        if self._ptr is not None:
            ll.llama_sampler_free(self._ptr)
            self._ptr = None
