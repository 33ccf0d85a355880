"""The cache levels, measured in one run (`jarvis bench`, or `python -m jarvis.bench --cache`):

- end to end P99 of an L1 hit, an L2 ("disk") hit and a cold request, through the Assistant;
- the semantic level's nearest-neighbour lookup at 10k and 100k entries (numpy; sqlite-vec when
  this Python's sqlite3 can load it), excluding the embedding;
- the embedding's own time with the bundled model;
- the held set (jarvis/bench/data/semantic_pairs.tsv: 100 paraphrases, 100 near-misses): hit
  rate and false-hit rate per threshold, by the vector check alone and with the guards.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from jarvis.assistant import Assistant
from jarvis.bench.engine_bench import percentile
from jarvis.cache.guards import veto
from jarvis.cache.semantic import VectorIndex
from jarvis.config import load_settings

THRESHOLDS = [round(0.85 + 0.01 * i, 2) for i in range(13)]  # 0.85 ... 0.97
PAIRS_FILE = Path(str(resources.files("jarvis.bench") / "data" / "semantic_pairs.tsv"))


def held_pairs() -> list[tuple[str, str, str]]:
    rows = []
    for line in PAIRS_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            kind, first, second = line.split("\t")
            rows.append((kind, first, second))
    return rows


def _assistant(data_dir: str) -> Assistant:
    env = {k: v for k, v in os.environ.items() if k.startswith("JARVIS_ENGINE_")}  # e.g. N_THREADS
    env.update({"JARVIS_MODELS_WARMUP": "", "JARVIS_ENGINE_CONTEXT_LENGTH": "1024", "JARVIS_GPU_USE_GPU": "false",
                "JARVIS_GENERAL_DATA_DIR": data_dir})
    return Assistant(load_settings(environ=env))


async def end_to_end(repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="jarvis-cache-bench-") as data:
        a = _assistant(data)
        try:
            await a.manager.load(await a.resolve_default())  # waits for the first scan
            ask = lambda: a.request("Name three rivers.", temperature=0, max_tokens=32)  # noqa: E731
            cold = await a.chat(ask())
            l1, l2 = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = await a.chat(ask())
                l1.append((time.perf_counter() - t0) * 1000)
                assert r.record.cache == "hit", r.record.cache
            for _ in range(repeats):
                a.cache.memory.clear()  # the L1 forgets: the answer comes from the file
                t0 = time.perf_counter()
                r = await a.chat(ask())
                l2.append((time.perf_counter() - t0) * 1000)
                assert r.record.cache == "disk", r.record.cache
        finally:
            await a.close()
    return {"cache_l1_hit_p99_ms": percentile(l1, 99), "cache_l2_hit_p99_ms": percentile(l2, 99),
            "cache_l2_hit_p50_ms": percentile(l2, 50), "cache_cold_request_ms": cold.record.total_ms,
            "cache_l2_vs_cold_ratio": percentile(l2, 99) / cold.record.total_ms}


def embedding_like(entries: int, dims: int, seed: int = 0) -> np.ndarray:
    """Unit vectors shaped like a language model's pooled embeddings: one shared direction plus
    noise (mean pairwise similarity ~0.89, as the bundled model's prompts are)."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal(dims).astype(np.float32) * 3 + rng.standard_normal((entries, dims), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def lookup_numpy(entries: int, dims: int, queries: int = 200) -> dict:
    """VectorIndex.nearest vs one exact scan of the same matrix, interleaved in one run, on queries
    that are stored prompts reworded (a little noise: similarity ~0.97 to their source): P50/P99
    ms of both, and how often the index found the exact nearest (recall)."""
    rng = np.random.default_rng(1)
    vectors = embedding_like(entries, dims)
    index = VectorIndex(vectors)
    fast, exact, found = [], [], 0
    for i in rng.integers(0, entries, queries):
        q = vectors[i] + rng.standard_normal(dims, dtype=np.float32) * 0.01
        q /= np.linalg.norm(q)
        t0 = time.perf_counter()
        row, _ = index.nearest(q)
        fast.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        best = int(np.argmax(vectors @ q))
        exact.append((time.perf_counter() - t0) * 1000)
        found += row == best
    return {"p50": percentile(fast, 50), "p99": percentile(fast, 99), "exact_p50": percentile(exact, 50),
            "exact_p99": percentile(exact, 99), "recall": found / queries}


def lookup_sqlite_vec(entries: int, dims: int, queries: int = 50) -> float | str:
    """P99 ms of a sqlite-vec KNN query, or why it cannot run here."""
    import sqlite3

    try:
        import sqlite_vec  # type: ignore[import-not-found]
    except ImportError:
        return "sqlite-vec is not installed"
    db = sqlite3.connect(":memory:")
    if not hasattr(db, "enable_load_extension"):
        return "this Python's sqlite3 cannot load extensions (built without them)"
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((entries, dims), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    db.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{dims}] distance_metric=cosine)")
    db.executemany("INSERT INTO v(rowid, embedding) VALUES (?, ?)", ((i, v.tobytes()) for i, v in enumerate(vectors)))
    times = []
    for q in vectors[rng.integers(0, entries, queries)]:
        t0 = time.perf_counter()
        db.execute("SELECT rowid, distance FROM v WHERE embedding MATCH ? ORDER BY distance LIMIT 1",
                   (q.tobytes(),)).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    return percentile(times, 99)


async def held_set_and_embedding(quick: bool) -> dict:
    pairs = held_pairs()
    with tempfile.TemporaryDirectory(prefix="jarvis-cache-bench-") as data:
        a = _assistant(data)
        try:
            name = await a.resolve_default()  # waits for the first scan
            info = await a.catalog.lookup(name)
            async with a.manager.lease(info) as lease:
                backend = lease.backend
                one = []
                for _ in range(10 if quick else 50):
                    t0 = time.perf_counter()
                    await backend.embed(["What is the capital of France?"])
                    one.append((time.perf_counter() - t0) * 1000)
                texts = [t for _, first, second in pairs for t in (first, second)]
                result = await backend.embed(texts)
                dims = len(result.vectors[0])
        finally:
            await a.close()
    sims = [float(result.vectors[2 * i] @ result.vectors[2 * i + 1]) for i in range(len(pairs))]
    vetoed = [bool(veto(second, first)) for _, first, second in pairs]
    para = [i for i, (k, _, _) in enumerate(pairs) if k == "paraphrase"]
    near = [i for i, (k, _, _) in enumerate(pairs) if k != "paraphrase"]
    table = []
    for t in THRESHOLDS:
        table.append({
            "threshold": t,
            "hit_rate": sum(sims[i] >= t and not vetoed[i] for i in para) / len(para),
            "vector_only_hit_rate": sum(sims[i] >= t for i in para) / len(para),
            "false_hit_rate": sum(sims[i] >= t and not vetoed[i] for i in near) / len(near),
            "vector_only_false_hit_rate": sum(sims[i] >= t for i in near) / len(near),
        })
    return {"embedding_model": name, "embedding_dims": dims, "embedding_p50_ms": percentile(one, 50),
            "embedding_p99_ms": percentile(one, 99), "held_set": table,
            "held_set_pairs": {"paraphrases": len(para), "near_misses": len(near)},
            "held_set_similarity_mean": {"paraphrase": float(np.mean([sims[i] for i in para])),
                                         "near_miss": float(np.mean([sims[i] for i in near]))}}


def run(quick: bool = False) -> dict:
    results = asyncio.run(end_to_end(50 if quick else 200))
    results.update(asyncio.run(held_set_and_embedding(quick)))
    dims = results["embedding_dims"]
    for entries in (10_000, 100_000):
        label = f"{entries // 1000}k"
        figures = lookup_numpy(entries, dims)
        results[f"semantic_lookup_numpy_{label}_p50_ms"] = figures["p50"]
        results[f"semantic_lookup_numpy_{label}_p99_ms"] = figures["p99"]
        results[f"semantic_lookup_exact_scan_{label}_p50_ms"] = figures["exact_p50"]
        results[f"semantic_lookup_exact_scan_{label}_p99_ms"] = figures["exact_p99"]
        results[f"semantic_lookup_{label}_vs_exact_scan_p99_ratio"] = figures["p99"] / figures["exact_p99"]
        results[f"semantic_lookup_{label}_recall"] = figures["recall"]
        vec = lookup_sqlite_vec(entries, dims)
        results[f"semantic_lookup_sqlite_vec_{label}_p99_ms"] = vec
    return results


def format_table(results: dict) -> str:
    lines = ["threshold  hit rate  false hits (guards)  | vector only: hit rate  false hits"]
    for row in results["held_set"]:
        lines.append(f"{row['threshold']:>9.2f}  {row['hit_rate']:>8.0%}  {row['false_hit_rate']:>19.0%}  | "
                     f"{row['vector_only_hit_rate']:>21.0%}  {row['vector_only_false_hit_rate']:>10.0%}")
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import logging
    import sys

    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("JARVIS_MODELS_WARMUP", "")
    out = run("--quick" in sys.argv)
    print(format_table(out))
    print(json.dumps(out, default=float))
