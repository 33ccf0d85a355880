"""Prompt-lookup drafting (llama-server's n-gram speculation, llama-cpp-python's
LlamaPromptLookupDecoding): when the last few tokens already occurred earlier in the prompt or
the answer so far, guess that what followed them then follows them again.

Rewriting or editing a text copies long runs of its prompt, so the guesses are often right; the
engine checks them all in one decode (see Engine._step) and keeps only the agreeing prefix, so a
wrong guess costs a little compute and never changes the answer.
"""

from __future__ import annotations

from array import array

NGRAM_MAX = 4  # the longest tail looked up first: a longer match is a better guess
NGRAM_MIN = 3  # shorter tails (a repeated token, a common pair) match too often to be worth a draft


def draft(history, n_draft: int, ngram_max: int = NGRAM_MAX, ngram_min: int = NGRAM_MIN) -> list[int]:
    """Up to `n_draft` tokens that followed the most recent earlier occurrence of the longest
    tail n-gram (ngram_max down to ngram_min tokens) of `history`; [] when none occurred.

    `history` is a list of token ids or an array('i'); the search is bytes.rfind over its
    int32 image (C speed), keeping only matches that start on a token boundary."""
    n_hist = len(history)
    if n_draft <= 0 or n_hist < ngram_min + 1:
        return []
    hist = history if isinstance(history, array) else array("i", history)
    raw = hist.tobytes()
    size = hist.itemsize
    for n in range(min(ngram_max, n_hist - 1), ngram_min - 1, -1):
        tail = raw[(n_hist - n) * size:]
        end = (n_hist - 1) * size  # an earlier occurrence i ends by token n_hist - 2: i + n < n_hist
        while (at := raw.rfind(tail, 0, end)) >= 0:
            if at % size == 0:
                i = at // size
                return hist[i + n:i + n + n_draft].tolist()
            end = at + len(tail) - 1  # misaligned: look at the starts before it
    return []
