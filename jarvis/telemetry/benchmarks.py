"""Saved per-model benchmark results (<data_dir>/benchmarks.jsonl): written by `jarvis bench --model
NAME --save` and the monitor's Benchmarks page, read by both to compare models and runs. The
suite that measures them is jarvis/bench/model_bench.py."""

from __future__ import annotations

import json
from pathlib import Path


class BenchmarkStore:
    """Saved results, one JSON object per line; the file only grows by whole lines."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def save(self, result: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(result, separators=(",", ":")) + "\n")

    def load(self) -> list[dict]:
        """Every saved result, oldest first; a line that does not parse is skipped."""
        if not self.path.exists():
            return []
        results = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                results.append(json.loads(line))
            except ValueError:
                continue
        return results
