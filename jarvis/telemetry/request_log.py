"""RequestLog: one JSON line per finished request, rotated by size, written by a thread of its own.

The standard library's pieces: the emitter (often the event loop) puts each record on a bounded
queue through a QueueHandler; a QueueListener thread formats it and hands it to a
RotatingFileHandler (requests.jsonl -> .1 -> ... -> .N). A read-only directory or a full disk
gives one warning and the log carries on (dropping lines while it cannot write); nothing is ever
raised into the emitter. Prompt and reply text are written only when `log_prompts` is on.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

from jarvis.telemetry.records import RequestRecord

log = logging.getLogger("jarvis.telemetry.request_log")


def request_log_entry(r: RequestRecord, log_prompts: bool = False) -> dict:
    """One JSON line: the record as it serialises everywhere (RequestRecord.as_dict), with the wall
    clock also written out in ISO 8601 for people reading the file."""
    return {"time": datetime.fromtimestamp(r.timestamp, timezone.utc).isoformat(timespec="milliseconds"),
            **r.as_dict(texts=log_prompts)}


class _JsonLines(logging.Formatter):
    """The LogRecord's msg is the RequestRecord itself: it becomes one JSON line on the writer thread."""

    def __init__(self, log_prompts: bool) -> None:
        super().__init__()
        self.log_prompts = log_prompts

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(request_log_entry(record.msg, self.log_prompts), ensure_ascii=False)


class _Enqueue(logging.handlers.QueueHandler):
    """Puts the record on the queue as it is: formatting waits for the writer thread."""

    def __init__(self, q: queue.Queue, on_full) -> None:
        super().__init__(q)
        self._on_full = on_full

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:  # the disk cannot keep up: lose a line rather than stall the emitter
            self._on_full()


class _RotatingJsonl(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler that makes its folder, keeps going when it cannot write, and with no
    backups starts the file afresh (the standard one would then grow forever)."""

    def __init__(self, path: Path, max_bytes: int, backups: int, on_error) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)
        self._on_error = on_error

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def doRollover(self) -> None:
        super().doRollover()
        if self.backupCount == 0:
            Path(self.baseFilename).unlink(missing_ok=True)

    def handleError(self, record: logging.LogRecord) -> None:
        if self.stream is not None:  # try again from a fresh open at the next line
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None
        self._on_error(record)


class _Listener(logging.handlers.QueueListener):
    def enqueue_sentinel(self) -> None:
        self.queue.put(self._sentinel)  # blocking: a full queue must not make close() fail


class RequestLog:
    """Subscribe `observe` to a RecordBus; call `close()` at shutdown (it flushes)."""

    def __init__(self, path: str | os.PathLike, max_bytes: int = 10 * 1024 * 1024, backups: int = 3,
                 log_prompts: bool = False, max_pending: int = 10_000) -> None:
        self.path = Path(path)
        self.log_prompts = log_prompts
        self._dropped = 0  # lines lost to a full queue or a failed write
        self._dropped_lock = threading.Lock()  # counted from the emitters and the writer
        self._warned = False
        self._closed = False
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._file = _RotatingJsonl(self.path, max_bytes, backups, self._write_failed)
        self._file.setFormatter(_JsonLines(log_prompts))
        self._enqueue = _Enqueue(self._queue, self._drop)
        self._listener = _Listener(self._queue, self._file)
        self._listener.start()

    # ---- emitter side (any thread) -------------------------------------------------------
    def observe(self, record: object) -> None:
        if not isinstance(record, RequestRecord) or self._closed:
            return
        self._enqueue.emit(logging.makeLogRecord({"msg": record, "name": log.name, "levelno": logging.INFO}))

    @property
    def dropped(self) -> int:
        return self._dropped

    def _drop(self) -> None:
        with self._dropped_lock:
            self._dropped += 1

    def _write_failed(self, record: logging.LogRecord) -> None:
        self._drop()
        if not self._warned:
            self._warned = True
            log.warning("Cannot write the request log %s (%s). Requests go on unlogged; free some disk space or "
                        "set telemetry.request_log to a writable path.", self.path, sys.exc_info()[1])

    def flush(self) -> None:
        """Block until every record queued so far is written (or dropped)."""
        self._queue.join()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._listener.stop()  # writes what is queued, then ends the writer thread
        self._file.close()
