"""TokenLogprobs in OpenAI's two shapes: chat (`logprobs.content[]`) and legacy completions
(`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`)."""

from __future__ import annotations

from typing import Any, Iterable

from jarvis.request_options import TokenLogprob


def _alt(token: str, data: bytes, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(data)}


def chat_logprobs(entries: Iterable[TokenLogprob]) -> dict[str, Any]:
    return {"content": [{**_alt(e.token, e.bytes, e.logprob), "top_logprobs": [_alt(*t) for t in e.top]}
                        for e in entries], "refusal": None}


def completion_logprobs(entries: Iterable[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """`offset`: where the first of these tokens starts in the whole completion's text."""
    tokens, logprobs, tops, offsets = [], [], [], []
    for e in entries:
        tokens.append(e.token)
        logprobs.append(e.logprob)
        tops.append({t: lp for t, _, lp in e.top})
        offsets.append(offset)
        offset += len(e.token)
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets}
