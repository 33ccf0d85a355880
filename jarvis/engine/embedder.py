"""Embeddings for one loaded model: a second llama context (embeddings on, pooled) beside the
generation context, with a thread of its own, so the event loop never waits on it and the
generation slots keep decoding meanwhile. The weights are shared (a model is read-only).

Pooling: what the GGUF says (`<arch>.pooling_type`), else the mean over the input's tokens (a
causal LM has no pooling of its own). Inputs are packed, several sequences per `llama_decode`,
and every vector is L2-normalised.
"""

from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

import llama_cpp as ll
import numpy as np

from jarvis.backends.base import Embeddings
from jarvis.engine.handles import Batch, LlamaModel
from jarvis.errors import InvalidRequest, ModelLoadError

MAX_SEQS_PER_DECODE = 16
MAX_EMBED_CTX = 2048


def model_meta(model: LlamaModel, key: str) -> str | None:
    buf = ctypes.create_string_buffer(256)
    n = ll.llama_model_meta_val_str(model.ptr, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", errors="replace") if n >= 0 else None


class Embedder:
    def __init__(self, model: LlamaModel, name: str, n_threads: int):
        self._model = model
        self._name = name
        self._n_threads = n_threads
        self._ctx = None
        self._batch: Batch | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"jarvis-embed:{name}")
        arch = model_meta(model, "general.architecture") or ""
        self.native_pooling = model_meta(model, f"{arch}.pooling_type") is not None
        self.n_ctx = min(model.n_ctx_train or MAX_EMBED_CTX, MAX_EMBED_CTX)
        self.dimensions = int(ll.llama_model_n_embd(model.ptr))
        self._encoder_only = bool(ll.llama_model_has_encoder(model.ptr)) and not ll.llama_model_has_decoder(model.ptr)

    def submit(self, inputs: list[str | list[int]]):
        """A concurrent.futures.Future of Embeddings; the work runs on this embedder's thread."""
        return self._executor.submit(self._embed, inputs)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            if self._batch is not None:
                self._batch.close()
            if self._ctx is not None:
                ll.llama_free(self._ctx)
            self._ctx = self._batch = None

    # ---- on the embedder's thread ---------------------------------------------------------
    def _context(self):
        if self._ctx is None:
            params = ll.llama_context_default_params()
            params.n_ctx = params.n_batch = params.n_ubatch = self.n_ctx  # a whole input in one ubatch
            params.n_seq_max = MAX_SEQS_PER_DECODE
            params.kv_unified = True  # the sequences of one decode share the cells
            params.n_threads = params.n_threads_batch = self._n_threads
            params.embeddings = True
            params.pooling_type = ll.LLAMA_POOLING_TYPE_UNSPECIFIED if self.native_pooling else ll.LLAMA_POOLING_TYPE_MEAN
            params.no_perf = True
            ctx = ll.llama_init_from_model(self._model.ptr, params)
            if not ctx:
                raise ModelLoadError(self._model.path, f"llama.cpp could not create an embeddings context of {self.n_ctx} tokens")
            self._ctx = ctx
            self._batch = Batch(self.n_ctx)
        return self._ctx

    def _tokens(self, inputs: list[str | list[int]]) -> list[list[int]]:
        out = []
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                tokens = self._model.tokenize(item, add_special=True, parse_special=False)
            else:
                bad = [t for t in item if not 0 <= t < self._model.n_vocab]
                if bad:
                    raise InvalidRequest(f"input[{i}] has token ids outside this model's vocabulary "
                                         f"(0-{self._model.n_vocab - 1}): {bad[:3]}.", field=f"input[{i}]")
                tokens = list(item)
            if not tokens:
                raise InvalidRequest(f"input[{i}] is empty.", field=f"input[{i}]")
            if len(tokens) > self.n_ctx:
                raise InvalidRequest(f"input[{i}] has {len(tokens)} tokens; this model embeds at most {self.n_ctx}.",
                                     field=f"input[{i}]")
            out.append(tokens)
        return out

    def _embed(self, inputs: list[str | list[int]]) -> Embeddings:
        with self._lock:
            token_lists = self._tokens(inputs)
            ctx = self._context()
            vectors: list[np.ndarray] = []
            group: list[list[int]] = []
            for tokens in token_lists:
                if group and (len(group) == MAX_SEQS_PER_DECODE or sum(map(len, group)) + len(tokens) > self.n_ctx):
                    vectors.extend(self._decode(ctx, group))
                    group = []
                group.append(tokens)
            if group:
                vectors.extend(self._decode(ctx, group))
            return Embeddings(vectors, sum(map(len, token_lists)))

    def _decode(self, ctx, group: list[list[int]]) -> list[np.ndarray]:
        batch = self._batch
        batch.clear()
        for seq_id, tokens in enumerate(group):
            for pos, token in enumerate(tokens):
                batch.add(token, pos, seq_id, True)
        ll.llama_memory_clear(ll.llama_get_memory(ctx), True)
        rc = ll.llama_encode(ctx, batch.raw) if self._encoder_only else ll.llama_decode(ctx, batch.raw)
        if rc != 0:
            raise ModelLoadError(self._model.path, f"llama.cpp failed to compute embeddings (code {rc})")
        out = []
        for seq_id in range(len(group)):
            ptr = ll.llama_get_embeddings_seq(ctx, seq_id)
            if not ptr:
                raise ModelLoadError(self._model.path, "llama.cpp returned no pooled embedding")
            vector = np.ctypeslib.as_array(ptr, shape=(self.dimensions,)).astype(np.float32)
            norm = float(np.linalg.norm(vector))
            out.append(vector / norm if norm > 0 else vector)
        return out
