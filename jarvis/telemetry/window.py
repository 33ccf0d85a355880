"""SlidingWindow: one timing series over the last `window_s` seconds, kept sorted as it goes.

Samples sit twice: in arrival order (a deque, to forget the oldest) and in a sorted list (bisect),
so percentiles are exact and cost O(1) to read: no copy and no sort while a reader holds the lock
that engine threads need to record. Adding or forgetting a sample is a bisect plus a memmove.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class SlidingWindow:
    """Not thread-safe on its own: PerfMonitor guards it with its lock."""

    def __init__(self, window_s: float, max_samples: int, unit: str = "ms") -> None:
        self.window_s = window_s
        self.max_samples = max_samples
        self.unit = unit  # names the summary's keys: p50_ms for times, p50_tokens_per_s for a rate
        self.lifetime = 0
        self._arrivals: deque[tuple[float, float, bool]] = deque()  # (t, value, ok)
        self._sorted: list[float] = []
        self._ok = 0
        self._sum = 0.0

    def add(self, t: float, value: float, ok: bool) -> None:
        if len(self._arrivals) >= self.max_samples:  # a flood inside the window: forget the oldest
            self._forget_oldest()
        self._arrivals.append((t, value, ok))
        insort(self._sorted, value)
        self._ok += ok
        self._sum += value
        self.lifetime += 1

    def prune(self, now: float) -> None:
        horizon = now - self.window_s
        while self._arrivals and self._arrivals[0][0] < horizon:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _, value, ok = self._arrivals.popleft()
        del self._sorted[bisect_left(self._sorted, value)]
        self._ok -= ok
        self._sum -= value
        if not self._arrivals:
            self._sum = 0.0  # a running sum drifts by rounding; an empty window resets it

    def summary(self) -> dict[str, Any]:
        values, count, u = self._sorted, len(self._sorted), self.unit
        if not count:
            return {"count": 0, "lifetime_count": self.lifetime, f"avg_{u}": None, f"min_{u}": None,
                    f"max_{u}": None, f"p50_{u}": None, f"p95_{u}": None, f"p99_{u}": None, "success_rate": None}
        return {
            "count": count,
            "lifetime_count": self.lifetime,
            f"avg_{u}": self._sum / count,
            f"min_{u}": values[0],
            f"max_{u}": values[-1],
            f"p50_{u}": percentile(values, 50),
            f"p95_{u}": percentile(values, 95),
            f"p99_{u}": percentile(values, 99),
            "success_rate": self._ok / count,
        }
