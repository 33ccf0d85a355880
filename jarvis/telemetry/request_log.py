"""RequestLog: one JSON line per finished request, rotated by size, written by a thread of its own.

The engine thread only puts the record on a bounded queue; formatting and disk I/O happen on the
writer thread. A read-only directory or a full disk gives one warning and the log carries on
(dropping lines while it cannot write); nothing is ever raised into the emitter.
Prompt and reply text are written only when `log_prompts` is on.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from jarvis.telemetry.records import RequestRecord

log = logging.getLogger("jarvis.telemetry.request_log")
_STOP = object()


def request_log_entry(r: RequestRecord, log_prompts: bool = False) -> dict:
    entry = {
        "timestamp": datetime.fromtimestamp(r.timestamp, timezone.utc).isoformat(timespec="milliseconds"),
        "request_id": r.request_id,
        "model": r.model,
        "operation": r.operation,
        "status": r.status,
        "latency_ms": round(r.latency_ms, 3),
        "queue_ms": round(r.queue_ms, 3),
        "ttft_ms": round(r.ttft_ms, 3),
        "model_load_ms": round(r.model_load_ms, 3),
        "model_warm_start": r.warm_start,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "tokens_per_s": round(r.decode_tokens_per_s, 3),
        "cache_hit": r.cache_hit,
        "error_kind": r.error_kind,
    }
    if log_prompts:
        entry["prompt"] = r.prompt
        entry["reply"] = r.reply
    return entry


class RequestLog:
    """Subscribe `observe` to a RecordBus; call `close()` at shutdown (it flushes)."""

    def __init__(self, path: str | os.PathLike, max_bytes: int = 10 * 1024 * 1024, backups: int = 3,
                 log_prompts: bool = False, max_pending: int = 10_000) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.log_prompts = log_prompts
        self._dropped = 0  # lines lost to a full queue or a failed write
        self._dropped_lock = threading.Lock()  # counted from the emitters and the writer
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._file: IO[str] | None = None
        self._warned = False
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="jarvis-request-log", daemon=True)
        self._writer.start()

    # ---- emitter side (any thread) -------------------------------------------------------
    def observe(self, record: object) -> None:
        if not isinstance(record, RequestRecord) or self._closed:
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:  # the disk cannot keep up: lose a line rather than stall the engine
            self._drop()

    @property
    def dropped(self) -> int:
        return self._dropped

    def _drop(self) -> None:
        with self._dropped_lock:
            self._dropped += 1

    def flush(self) -> None:
        """Block until every record queued so far is written (or dropped)."""
        self._queue.join()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join()

    # ---- writer thread -------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    self._close_file()
                    return
                self._write(json.dumps(request_log_entry(item, self.log_prompts), ensure_ascii=False) + "\n")
            finally:
                self._queue.task_done()

    def _write(self, line: str) -> None:
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(line)
            self._file.flush()
            if self.max_bytes and self._file.tell() >= self.max_bytes:
                self._rotate()
        except (OSError, ValueError) as e:
            self._drop()
            self._close_file()
            if not self._warned:
                self._warned = True
                log.warning("Cannot write the request log %s (%s). Requests go on unlogged; free some "
                            "disk space or set telemetry.request_log to a writable path.", self.path, e)

    def _rotate(self) -> None:
        """requests.jsonl -> requests.jsonl.1 -> ... -> .N; the oldest falls off (RotatingFileHandler's scheme)."""
        self._close_file()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for i in range(self.backups - 1, 0, -1):
            older = Path(f"{self.path}.{i}")
            if older.exists():
                os.replace(older, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
