"""Sampling under a grammar, the way llama.cpp's own common sampler does it.

Checking a grammar against all ~49k vocabulary entries costs far more than sampling, so the
slot's ordinary chain picks a token from the raw logits first and only that one token is checked.
Only when the grammar rejects it is the grammar applied, and the chain run again on what is left.
JARVIS goes one step further than llama.cpp there: the grammar first sees only the
SHORTLIST most likely tokens (one argpartition), and the whole vocabulary only when none of those
is allowed. Sampling under a grammar is an approximation in llama.cpp too (the chain's choice is
checked after truncation); the shortlist keeps the likely tokens, which is what the chain keeps.
Requests without a grammar never come here (plain SamplerChain).
"""

from __future__ import annotations

import ctypes
import math

import llama_cpp as ll
import numpy as np

from jarvis.engine.handles import LlamaContext, LlamaModel, SamplerChain
from jarvis.errors import InvalidRequest
from jarvis.request_options import Grammar, RequestOptions

# llama_token_data as numpy sees it, so a whole vocabulary is filled in one vectorised copy.
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
SHORTLIST = 256  # >= any sensible top_k: the chain's truncation sees the same leaders
assert TOKEN_DATA.itemsize == ctypes.sizeof(ll.llama_token_data)


def make_sampler(model: LlamaModel, sampling, seed: int, options: RequestOptions):
    chain = SamplerChain(model, sampling, seed)
    if options.grammar is None:
        return chain
    try:
        return GrammarSampler(model, chain, options.grammar)
    except BaseException:
        chain.close()
        raise


class GrammarSampler:
    """A SamplerChain plus a grammar; same face (sample, accept, close)."""

    def __init__(self, model: LlamaModel, chain: SamplerChain, grammar: Grammar):
        self._chain = chain
        self._model = model
        gbnf = grammar.gbnf.encode()
        if grammar.triggers:
            patterns = (ctypes.c_char_p * len(grammar.triggers))(*(t.encode() for t in grammar.triggers))
            ptr = ll.llama_sampler_init_grammar_lazy_patterns(model.vocab, gbnf, b"root", patterns,
                                                              len(grammar.triggers), None, 0)
        else:
            ptr = ll.llama_sampler_init_grammar(model.vocab, gbnf, b"root")
        if not ptr:
            raise InvalidRequest("llama.cpp could not parse the grammar made for this request.",
                                 field="response_format")
        self._grammar = ptr
        self.label = grammar.label
        n = model.n_vocab
        self._ids = np.arange(n, dtype=np.int32)
        self._cells = np.zeros(n, dtype=TOKEN_DATA)
        self._cells_ptr = self._cells.ctypes.data_as(ll.llama_token_data_p)
        self._all = ll.llama_token_data_array(self._cells_ptr, n, -1, False)
        self._one_cell = ll.llama_token_data()
        self._one = ll.llama_token_data_array(ctypes.pointer(self._one_cell), 1, -1, False)
        self.sampled = 0
        self.rejected = 0  # tokens the chain chose that the grammar refused
        self.full_passes = 0  # rejections where no shortlisted token was allowed: the grammar saw every token

    def _logits(self, ctx: LlamaContext, batch_index: int) -> np.ndarray:
        return np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx.ptr, batch_index), shape=(len(self._ids),))

    def _load(self, ids: np.ndarray, logits: np.ndarray) -> None:
        n = len(ids)
        cells = self._cells[:n]
        cells["id"] = ids  # samplers sort in place: restore the order every time
        cells["logit"] = logits
        cells["p"] = 0.0
        self._all.data = self._cells_ptr  # samplers may move the pointer and shrink the size
        self._all.size = n
        self._all.selected = -1
        self._all.sorted = False

    def _any_allowed(self) -> bool:
        # The grammar marks refused tokens -inf in place (it never moves the array).
        return bool(np.isfinite(self._cells["logit"][:self._all.size]).any())

    def _pick(self) -> int:
        return self._all.data[self._all.selected].id

    def _allowed(self, token: int) -> bool:
        cell = self._one_cell
        cell.id, cell.logit, cell.p = token, 1.0, 0.0
        self._one.data = ctypes.pointer(cell)
        self._one.size, self._one.selected, self._one.sorted = 1, -1, False
        ll.llama_sampler_apply(self._grammar, ctypes.byref(self._one))
        return not math.isinf(self._one.data[0].logit)

    def sample(self, ctx: LlamaContext, batch_index: int) -> int:
        chain = self._chain.ptr
        logits = self._logits(ctx, batch_index)
        self._load(self._ids, logits)
        ll.llama_sampler_apply(chain, ctypes.byref(self._all))
        token = self._pick()
        self.sampled += 1
        if not self._allowed(token):
            self.rejected += 1
            shortlist = np.argpartition(logits, -SHORTLIST)[-SHORTLIST:].astype(np.int32)
            self._load(shortlist, logits[shortlist])
            ll.llama_sampler_apply(self._grammar, ctypes.byref(self._all))
            if not self._any_allowed():
                self.full_passes += 1
                self._load(self._ids, logits)
                ll.llama_sampler_apply(self._grammar, ctypes.byref(self._all))
            ll.llama_sampler_apply(chain, ctypes.byref(self._all))
            token = self._pick()
        if not self._model.is_eog(token):  # the engine stops at an end token: nothing more to match
            ll.llama_sampler_accept(self._grammar, token)
        ll.llama_sampler_accept(chain, token)
        return token

    def accept(self, token: int) -> bool:
        """Take `token` without sampling, if the grammar allows it here; False (nothing taken)
        if not: the grammar the request asked for wins over a forced token."""
        if not self._allowed(token):
            return False
        ll.llama_sampler_accept(self._grammar, token)
        ll.llama_sampler_accept(self._chain.ptr, token)
        return True

    def close(self) -> None:
        if self._grammar is not None:
            ll.llama_sampler_free(self._grammar)
            self._grammar = None
        self._chain.close()
