"""The last N finished requests as rows: what the monitor's request explorer shows and
GET /api/requests/recent serves. Fed by the RecordBus (subscribe `observe`), one RequestRecord per
request, whatever answered it (a local engine or a remote backend: the `backend` column says).

No prompt or reply text unless `log_prompts` is on (the record carries them only then anyway).
"""

from __future__ import annotations

import threading
from collections import deque

from jarvis.telemetry.records import RequestRecord

COLUMNS = ["timestamp", "request_id", "model", "backend", "source", "operation", "prompt_tokens",
           "completion_tokens", "queue_position", "queue_ms", "ttft_ms", "decode_tokens_per_s", "total_ms",
           "cache", "tool_rounds", "tool_ms", "status", "error_kind"]


def row_of(r: RequestRecord, log_prompts: bool = False) -> dict:
    """The explorer's columns of the record's one serialised form (RequestRecord.as_dict)."""
    d = r.as_dict(texts=log_prompts)
    row = {k: d[k] for k in COLUMNS}
    row["source"] = row["source"] or "—"
    if log_prompts:
        row["prompt"] = r.prompt
    return row


class RecentRequests:
    """A bounded, thread-safe ring of the last `capacity` RequestRecords."""

    def __init__(self, capacity: int = 1000, log_prompts: bool = False) -> None:
        self.capacity = capacity
        self.log_prompts = log_prompts
        self._records: deque[RequestRecord] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.version = 0  # grows with every record: the explorer redraws only when it changed

    def observe(self, record: object) -> None:
        if isinstance(record, RequestRecord):
            with self._lock:
                self._records.append(record)
                self.version += 1

    def records(self, limit: int | None = None) -> list[RequestRecord]:
        """Newest first."""
        with self._lock:
            items = list(self._records)
        items.reverse()
        return items if limit is None else items[:max(0, limit)]

    def rows(self, limit: int | None = None) -> list[dict]:
        return [row_of(r, self.log_prompts) for r in self.records(limit)]
