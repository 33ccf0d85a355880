"""Per-minute rollups of the telemetry, kept in SQLite for days: history that survives a restart.

Besides the 1 Hz in-memory history (10 minutes), every finished minute becomes one row: request
count, errors, latency and TTFT percentiles, tokens, cache hits and misses, and the mean CPU, RAM,
GPU and the worst heartbeat stalls of that minute. Rows older than `retention_s` (7 days) are
deleted as each new one is written, so the file stays bounded (about 10 000 rows of ~200 bytes).

Threads: `observe` (subscribe it to the RecordBus) only appends under a lock, on whichever thread
emitted. `on_point` is called by TelemetryHub.tick, which runs on the hub's own thread, never on
the loop; that is where a finished minute is written. Reading (`rows`) is blocking: from the loop,
call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.telemetry.fold import facts
from jarvis.telemetry.records import RequestRecord
from jarvis.telemetry.window import percentile

WEEK_S = 7 * 86400
FIELDS = ["minute", "requests", "errors", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms",
          "ttft_p95_ms", "prompt_tokens", "completion_tokens", "cache_hits", "cache_misses", "cpu_percent",
          "ram_percent", "gpu_util_pct", "gpu_mem_used_bytes", "queue_depth_max", "ui_stall_max_ms",
          "loop_stall_max_ms"]
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS minute_rollups (
    minute INTEGER PRIMARY KEY,  -- unix time of the minute's start, seconds
    {", ".join(f"{f} REAL" for f in FIELDS[1:])}
)"""


@dataclass
class _Minute:
    start: int
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    points: int = 0
    cpu: float = 0.0
    ram: float = 0.0
    gpu_util: list[float] = field(default_factory=list)
    gpu_mem: list[float] = field(default_factory=list)
    queue_max: int = 0
    ui_stall: float | None = None
    loop_stall: float | None = None

    def row(self) -> dict:
        lat, ttft = sorted(self.latencies), sorted(self.ttfts)

        def pct(values, q):
            return percentile(values, q) if values else None

        def mean(values):
            return sum(values) / len(values) if values else None

        return {
            "minute": self.start, "requests": self.requests, "errors": self.errors,
            "latency_p50_ms": pct(lat, 50), "latency_p95_ms": pct(lat, 95), "latency_p99_ms": pct(lat, 99),
            "ttft_p50_ms": pct(ttft, 50), "ttft_p95_ms": pct(ttft, 95),
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cache_hits": self.cache_hits, "cache_misses": self.cache_misses,
            "cpu_percent": self.cpu / self.points if self.points else None,
            "ram_percent": self.ram / self.points if self.points else None,
            "gpu_util_pct": mean(self.gpu_util), "gpu_mem_used_bytes": mean(self.gpu_mem),
            "queue_depth_max": self.queue_max, "ui_stall_max_ms": self.ui_stall, "loop_stall_max_ms": self.loop_stall,
        }


def _worst(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


SUMMED = {"requests", "errors", "prompt_tokens", "completion_tokens", "cache_hits", "cache_misses"}
AVERAGED = {"cpu_percent", "ram_percent", "gpu_util_pct", "gpu_mem_used_bytes"}


def _merge(old: dict, new: dict) -> dict:
    out = {"minute": new["minute"]}
    for f in FIELDS[1:]:
        a, b = old.get(f), new.get(f)
        if f in SUMMED:
            out[f] = (a or 0) + (b or 0)
        elif f in AVERAGED:
            out[f] = b if a is None else a if b is None else (a + b) / 2
        else:
            out[f] = _worst(a, b)
    return out


class RollupStore:
    """One SQLite file of per-minute rows; `clock` is wall time (tests pass their own)."""

    def __init__(self, path: Path | str, retention_s: float = WEEK_S, clock=time.time) -> None:
        self.path = Path(path)
        self.retention_s = retention_s
        self._clock = clock
        self._lock = threading.Lock()  # the minute being filled
        self._db_lock = threading.Lock()  # the connection
        self._minute: _Minute | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)
        self.written = 0
        self.pruned = 0

    # ---- writing ------------------------------------------------------------------------
    def _current(self, now: float) -> _Minute:
        """The minute `now` falls in; a minute that ended is handed back for writing via _ended."""
        start = int(now // 60 * 60)
        if self._minute is None:
            self._minute = _Minute(start)
        return self._minute

    def observe(self, record: object) -> None:
        if not isinstance(record, RequestRecord):
            return
        f = facts(record)  # what the record adds, decided once (jarvis.telemetry.fold)
        with self._lock:
            m = self._current(self._clock())
            m.requests += 1
            m.errors += f.status == "error"
            m.latencies.append(f.latency_ms)
            if f.ttft_ms is not None:
                m.ttfts.append(f.ttft_ms)
            m.prompt_tokens += f.prompt_tokens
            m.completion_tokens += f.completion_tokens
            m.cache_hits += f.cache == "hit"
            m.cache_misses += f.cache == "miss"

    def on_point(self, point) -> None:
        """One 1 Hz SeriesPoint (from the hub's tick, on its thread): folds it into its minute and
        writes the minute before it once it is over. Blocking (SQLite): never on the loop."""
        ended = None
        with self._lock:
            start = int(point.timestamp // 60 * 60)
            if self._minute is not None and self._minute.start < start:
                ended, self._minute = self._minute, None
            m = self._current(point.timestamp)
            if m.start != start:
                m.start = start
            m.points += 1
            m.cpu += point.cpu_percent
            m.ram += point.ram_percent
            if point.gpu_util_pct is not None:
                m.gpu_util.append(point.gpu_util_pct)
            if point.gpu_mem_used_bytes is not None:
                m.gpu_mem.append(point.gpu_mem_used_bytes)
            m.queue_max = max(m.queue_max, point.queue_depth)
            m.ui_stall = _worst(m.ui_stall, point.ui_stall_max_ms)
            m.loop_stall = _worst(m.loop_stall, point.loop_stall_max_ms)
        if ended is not None:
            self.write(ended.row())

    def write(self, row: dict) -> None:
        """Store one minute's row and delete the rows older than the retention, in one transaction.
        A row for that minute already there (the app restarted within the minute) is merged:
        counts add up; percentiles and stalls keep the worse of the two; means are averaged."""
        horizon = self._clock() - self.retention_s
        with self._db_lock:
            self._db.execute("BEGIN")
            try:
                old = self._db.execute(f"SELECT {', '.join(FIELDS)} FROM minute_rollups WHERE minute = ?",
                                       (row["minute"],)).fetchone()
                if old is not None:
                    row = _merge(dict(zip(FIELDS, old)), row)
                self._db.execute(f"INSERT OR REPLACE INTO minute_rollups ({', '.join(FIELDS)}) "
                                 f"VALUES ({', '.join('?' for _ in FIELDS)})", [row.get(f) for f in FIELDS])
                pruned = self._db.execute("DELETE FROM minute_rollups WHERE minute < ?", (horizon,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.written += 1
        self.pruned += max(0, pruned)

    def flush(self) -> None:
        """Write the minute in progress as it stands (at shutdown: a restart keeps it)."""
        with self._lock:
            m, self._minute = self._minute, None
        if m is not None and (m.points or m.requests):
            self.write(m.row())

    # ---- reading ------------------------------------------------------------------------
    def rows(self, since: float | None = None) -> list[dict]:
        """Rows from `since` (unix time) on, oldest first. Blocking."""
        with self._db_lock:
            cursor = self._db.execute(f"SELECT {', '.join(FIELDS)} FROM minute_rollups WHERE minute >= ? "
                                      "ORDER BY minute", (-math.inf if since is None else since,))
            return [dict(zip(FIELDS, values)) for values in cursor.fetchall()]

    def count(self) -> int:
        with self._db_lock:
            return self._db.execute("SELECT COUNT(*) FROM minute_rollups").fetchone()[0]

    def close(self) -> None:
        with self._db_lock:
            self._db.close()
