"""Prompts kept in host memory: copies of slots' KV cells, so that a request whose prompt begins
like one seen before starts from there instead of prefilling it again.

A slot keeps its last conversation's cells, but an engine has few slots (engine.batch_size) and
many conversations come and go: a desktop user switches back to an older chat, an agent sends
the same long system prompt and tool list with every step, an API client cycles through a set of
prompts. Without this, each of those prefills its whole prompt again whenever another
conversation took its slot in between; a 2,000-token history costs ~6 s of prefill on two cores.
Restoring its saved cells copies ~23 KB per token for the bundled model (a 2,000-token history:
~46 MB, a few ms).

The engine (engine.py, on its worker thread) saves a slot's cells here before the slot loses most
of them to another prompt, and asks here, when it admits a request, for a saved prompt sharing a
longer prefix with the request than any free slot does. Saved prompts stay saved when restored
(the slot works on a copy); one that is a prefix of a newer one is dropped for it; the least
recently used go first when the budget (engine.prompt_cache_mb) is full or MAX_ENTRIES are kept.
llama-server does the same with --cache-ram, on by default there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sized

import numpy as np

from jarvis.engine.sequence import common_prefix

MIB = 1 << 20
SAVE_MIN_TOKENS = 16  # a shorter prompt prefills faster than it is worth keeping
# A restore copies the whole saved prompt and saves prefilling only the tokens it has beyond what
# the slot already shares with the request. Prefilling one token costs what copying a few hundred
# tokens' cells does (2 CPU cores: ~3 ms against ~5 us per token); 64 keeps a margin for a GPU,
# whose prefill is faster per token and whose copies cross the bus.
RESTORE_MAX_RATIO = 64
# Finding a saved prompt compares it with every one kept (a few us each, on the worker thread,
# while other streams wait for the next step): a cap keeps that under ~1 ms however small they are.
MAX_ENTRIES = 256


@dataclass(eq=False)
class SavedPrompt:
    tokens: np.ndarray  # int32: the tokens whose cells `state` holds, positions 0..n-1
    state: Sized  # the context's own copy of those cells (LlamaContext.save_sequence); len() = bytes

    @property
    def size(self) -> int:
        return len(self.state)


class PromptCache:
    """Saved prompts of one engine, least recently used first. Used on the engine's worker thread only."""

    def __init__(self, limit_bytes: int, max_entries: int = MAX_ENTRIES) -> None:
        self.limit_bytes = limit_bytes
        self.max_entries = max_entries
        self._entries: list[SavedPrompt] = []
        self.bytes = 0
        # What it did, counted (the monitor's loaded-model summary shows them; tests count them).
        self.saves = self.restores = self.restored_tokens = self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.limit_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, tokens: np.ndarray) -> bool:
        """Whether a saved prompt begins with all of `tokens` (saving them again would add nothing)."""
        return any(len(e.tokens) >= len(tokens) and common_prefix(e.tokens, tokens) == len(tokens)
                   for e in self._entries)

    def worth_saving(self, tokens: np.ndarray) -> bool:
        return self.enabled and len(tokens) >= SAVE_MIN_TOKENS and not self.holds(tokens)

    def put(self, tokens: np.ndarray, state: Sized) -> bool:
        """Keep `state` (the cells of `tokens`). False when it alone is over the budget."""
        size = len(state)
        if size > self.limit_bytes:
            return False
        for entry in [e for e in self._entries if common_prefix(e.tokens, tokens) == len(e.tokens)]:
            self._drop(entry)  # it begins the new one: the new one restores everything it could
        while self._entries and (self.bytes + size > self.limit_bytes or len(self._entries) >= self.max_entries):
            self._drop(self._entries[0])
            self.evictions += 1
        self._entries.append(SavedPrompt(tokens, state))
        self.bytes += size
        self.saves += 1
        return True

    def best(self, prompt: np.ndarray, shared_already: int) -> tuple[SavedPrompt, int] | None:
        """The saved prompt sharing the longest prefix with `prompt`, with how many tokens it
        shares, when that is more than `shared_already` (what the request's slot holds) by
        enough to pay for copying it; None otherwise. The one returned becomes the most recently used."""
        found, longest = None, shared_already
        for entry in self._entries:
            n = common_prefix(entry.tokens, prompt)
            if n > longest and len(entry.tokens) <= RESTORE_MAX_RATIO * (n - shared_already):
                found, longest = entry, n
        if found is None:
            return None
        self._entries.remove(found)
        self._entries.append(found)
        return found, longest

    def restored(self, tokens: int) -> None:
        self.restores += 1
        self.restored_tokens += tokens

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def summary(self) -> dict:
        return {"entries": len(self._entries), "bytes": self.bytes, "limit_bytes": self.limit_bytes,
                "saves": self.saves, "restores": self.restores, "restored_tokens": self.restored_tokens,
                "evictions": self.evictions}

    def _drop(self, entry: SavedPrompt) -> None:
        self._entries.remove(entry)
        self.bytes -= entry.size
