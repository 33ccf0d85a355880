"""The semantic level's index: per scope, the earlier prompts' unit vectors in one numpy matrix;
the nearest is one matrix-vector product. Loaded from the L2 file the first time a scope is
asked, kept in step with every prompt added. Runs on the cache's disk thread only.

(sqlite-vec was the other candidate: see `jarvis bench` and the README for why numpy stayed.)
Large scopes scan a projection first (VectorIndex).
"""

from __future__ import annotations

from dataclasses import dataclass

import cachetools
import numpy as np

from jarvis.cache.disk import DiskLevel, Prompt
from jarvis.cache.guards import veto

MAX_SCOPES_IN_MEMORY = 64  # scopes whose vectors stay in memory (LRU); the rest are read again when asked


SHORTLIST_FROM = 32768  # entries from which a lookup scans a projection first (below, one exact scan is cheaper)
PROJECTED_DIMS = 128
SHORTLIST = 1024  # candidates re-scored exactly


class VectorIndex:
    """Unit vectors, one row each; grows by doubling so adding is amortised O(1).

    Up to SHORTLIST_FROM rows a lookup is one exact matrix-vector product. Past that, the whole
    matrix (100k x 576 float32 = 230 MB) is too much to read per lookup, so the rows are also kept
    projected on their 64 main directions (an SVD of the rows at that point): the projection picks
    128 candidates and those are scored exactly. A candidate the projection misses is a cache
    miss, never a false hit: the similarity returned is always the exact one."""

    def __init__(self, vectors: np.ndarray | None = None):
        self._rows = np.zeros((0, 0), dtype=np.float32) if vectors is None else np.ascontiguousarray(vectors, np.float32)
        self.size = len(self._rows)
        self._basis: np.ndarray | None = None  # d x PROJECTED_DIMS, orthonormal columns
        self._small = np.zeros((0, PROJECTED_DIMS), dtype=np.float32)
        if self.size >= SHORTLIST_FROM:
            self._project_all()

    def _project_all(self) -> None:
        rows = self._rows[:self.size]
        sample = rows[np.linspace(0, self.size - 1, min(self.size, SHORTLIST_FROM)).astype(int)]
        _, _, vt = np.linalg.svd(sample, full_matrices=False)
        self._basis = np.ascontiguousarray(vt[:PROJECTED_DIMS].T)
        self._small = np.zeros((len(self._rows), PROJECTED_DIMS), dtype=np.float32)
        self._small[:self.size] = rows @ self._basis

    def add(self, vector: np.ndarray) -> None:
        vector = np.asarray(vector, dtype=np.float32)
        if self.size == 0 and self._rows.shape[1] != vector.shape[0]:
            self._rows = np.zeros((16, vector.shape[0]), dtype=np.float32)
        if vector.shape[0] != self._rows.shape[1]:
            raise ValueError(f"a {vector.shape[0]}-d vector in a {self._rows.shape[1]}-d index")
        if self.size == len(self._rows):
            grown = np.zeros((max(16, 2 * len(self._rows)), self._rows.shape[1]), dtype=np.float32)
            grown[:self.size] = self._rows[:self.size]
            self._rows = grown
            if self._basis is not None:
                small = np.zeros((len(grown), PROJECTED_DIMS), dtype=np.float32)
                small[:self.size] = self._small[:self.size]
                self._small = small
        self._rows[self.size] = vector
        if self._basis is not None:
            self._small[self.size] = vector @ self._basis
        self.size += 1
        if self._basis is None and self.size >= SHORTLIST_FROM:
            self._project_all()

    def nearest(self, vector: np.ndarray) -> tuple[int, float]:
        """(row, cosine similarity) of the closest vector; (-1, -1.0) when empty or of another size."""
        if self.size == 0 or self._rows.shape[1] != len(vector):
            return -1, -1.0
        vector = np.asarray(vector, dtype=np.float32)
        if self._basis is None:
            scores = self._rows[:self.size] @ vector
            best = int(np.argmax(scores))
            return best, float(scores[best])
        rough = self._small[:self.size] @ (vector @ self._basis)
        candidates = np.argpartition(rough, -SHORTLIST)[-SHORTLIST:]
        exact = self._rows[candidates] @ vector
        best = int(np.argmax(exact))
        return int(candidates[best]), float(exact[best])


@dataclass
class _Scope:
    prompts: list[Prompt]
    index: VectorIndex


@dataclass(frozen=True)
class Match:
    prompt: Prompt
    similarity: float
    vetoed: str = ""  # why the guards refused it ("" = accepted)


class SemanticIndex:
    def __init__(self, disk: DiskLevel):
        self.disk = disk
        self._scopes: cachetools.LRUCache = cachetools.LRUCache(MAX_SCOPES_IN_MEMORY)
        disk.on_reset = self.forget
        self.hits = self.misses = self.vetoes = 0

    def forget(self) -> None:
        self._scopes.clear()

    def _scope(self, scope: str) -> _Scope:
        found = self._scopes.get(scope)
        if found is None:
            prompts, matrix = self.disk.prompts(scope)
            found = _Scope(prompts, VectorIndex(matrix if prompts else None))
            self._scopes[scope] = found
        return found

    def find(self, scope: str, vector: np.ndarray, text: str, threshold: float) -> Match | None:
        """The nearest earlier prompt of the scope at or above the threshold, the guards applied.
        None when nothing is close enough."""
        s = self._scope(scope)
        row, similarity = s.index.nearest(vector)
        if row < 0 or similarity < threshold or not self.disk.prompt_alive(s.prompts[row].id):
            self.misses += 1
            return None
        reason = veto(text, s.prompts[row].prompt)
        if reason:
            self.vetoes += 1
            self.misses += 1
        return Match(s.prompts[row], similarity, reason)

    def add(self, scope: str, reply_key: str, model: str, text: str, vector: np.ndarray, ttl_s: float) -> None:
        prompt_id = self.disk.add_prompt(scope, reply_key, model, text, vector, ttl_s)
        if prompt_id is None:
            return
        s = self._scopes.get(scope)
        if s is not None:
            s.prompts.append(Prompt(prompt_id, reply_key, text))
            s.index.add(vector)
