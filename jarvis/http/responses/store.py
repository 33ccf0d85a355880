"""Stored /v1/responses in SQLite (<data_dir>/responses.sqlite3): what previous_response_id,
GET, DELETE and input_items read. One writer thread owns the connection, so the asyncio loop
never touches SQLite; rows older than server.responses_retention_days are pruned on each write."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    response TEXT NOT NULL,      -- the response object as the API returns it
    input_items TEXT NOT NULL,   -- this turn's input items
    history TEXT NOT NULL        -- every item before this turn's output (previous turns included)
)"""


@dataclass(frozen=True)
class Stored:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    history: list[dict[str, Any]]

    def conversation(self) -> list[dict[str, Any]]:
        """What a response continuing this one starts from: its history, then its output."""
        return self.history + list(self.response.get("output") or [])


class ResponseStore:
    def __init__(self, path: Path, retention_s: float) -> None:
        self.path = path
        self.retention_s = retention_s
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jarvis-responses")

    @property
    def enabled(self) -> bool:
        return self.retention_s > 0

    # ---- async face (the loop) -----------------------------------------------------------
    async def open(self) -> None:
        """Open the file now (on the writer thread), so a bad data folder is said at start-up."""
        if self.enabled:
            await self._run(self._conn)

    async def put(self, response: dict, input_items: list[dict], history: list[dict]) -> None:
        await self._run(self._put, response, input_items, history)

    async def get(self, response_id: str) -> Stored | None:
        return await self._run(self._get, response_id)

    async def delete(self, response_id: str) -> bool:
        return await self._run(self._delete, response_id)

    async def close(self) -> None:
        await self._run(self._close)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---- the writer thread ---------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)
        return self._db

    def _put(self, response: dict, input_items: list[dict], history: list[dict]) -> None:
        db = self._conn()
        with db:
            db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                       (response["id"], response["created_at"], json.dumps(response), json.dumps(input_items),
                        json.dumps(history)))
            db.execute("DELETE FROM responses WHERE created_at < ?", (time.time() - self.retention_s,))

    def _get(self, response_id: str) -> Stored | None:
        row = self._conn().execute("SELECT response, input_items, history FROM responses WHERE id = ? AND "
                                   "created_at >= ?", (response_id, time.time() - self.retention_s)).fetchone()
        return Stored(*(json.loads(col) for col in row)) if row else None

    def _delete(self, response_id: str) -> bool:
        db = self._conn()
        with db:
            return db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
