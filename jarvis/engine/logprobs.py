"""Log-probabilities of a sampled token, read from the raw logits of its position (the model's
own distribution, before penalties and temperature). Only requests that ask for them call this."""

from __future__ import annotations

import llama_cpp as ll
import numpy as np

from jarvis.engine.handles import LlamaContext, LlamaModel
from jarvis.request_options import TokenLogprob


def read_logprobs(model: LlamaModel, ctx: LlamaContext, batch_index: int, token: int, top_n: int) -> TokenLogprob:
    logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx.ptr, batch_index), shape=(model.n_vocab,))
    shifted = logits.astype(np.float64) - float(logits.max())
    logprobs = shifted - np.log(np.exp(shifted).sum())
    top: tuple[tuple[str, bytes, float], ...] = ()
    if top_n > 0:
        best = np.argpartition(-logprobs, top_n - 1)[:top_n]
        best = best[np.argsort(-logprobs[best], kind="stable")]
        top = tuple(_entry(model, int(t), float(logprobs[t])) for t in best)
    text, data, lp = _entry(model, token, float(logprobs[token]))
    return TokenLogprob(text, data, lp, top)


def _entry(model: LlamaModel, token: int, logprob: float) -> tuple[str, bytes, float]:
    data = model.token_bytes(token)
    return data.decode("utf-8", errors="replace"), data, logprob
