"""L2: replies (and the semantic level's prompt vectors) in one SQLite file in the data folder.

Why SQLite from the standard library rather than diskcache: the level needs a second table (the
semantic prompts, found by scope), deletion by model, a TTL per kind and an LRU size cap counted
in the bytes we store, and a corrupt file set aside instead of an exception: a few SQL statements
give all of that, where diskcache would need tags, a second store and our own recovery anyway.

Every method here runs on the cache's one disk thread (DiskLevel is not thread-safe on purpose:
CacheLevels hands it work through a single-thread executor). Whatever goes wrong with the file
is logged and answered as a miss: the cache never fails a request.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np

from jarvis.request import Reply, RequestRecord

log = logging.getLogger("jarvis.cache")

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS replies(
    key TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT NULL,
    expires REAL NOT NULL, used REAL NOT NULL, bytes INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS replies_used ON replies(used);
CREATE INDEX IF NOT EXISTS replies_model ON replies(model);
CREATE TABLE IF NOT EXISTS prompts(
    id INTEGER PRIMARY KEY, scope TEXT NOT NULL, reply_key TEXT NOT NULL, model TEXT NOT NULL,
    prompt TEXT NOT NULL, vector BLOB NOT NULL, expires REAL NOT NULL, bytes INTEGER NOT NULL,
    UNIQUE(scope, reply_key));
CREATE INDEX IF NOT EXISTS prompts_scope ON prompts(scope);
CREATE INDEX IF NOT EXISTS prompts_reply ON prompts(reply_key);
"""
_RECORD_FIELDS = {f.name for f in fields(RequestRecord)} - {"inter_token_ms", "prompt", "reply"}


def encode_reply(reply: Reply) -> str:
    record = {k: v for k, v in asdict(reply.record).items() if k in _RECORD_FIELDS}
    return json.dumps({"text": reply.text, "record": record})


def decode_reply(body: str) -> Reply:
    data = json.loads(body)
    record = {k: v for k, v in data["record"].items() if k in _RECORD_FIELDS}  # fields added later: defaults
    return Reply(data["text"], RequestRecord(**record))


@dataclass(frozen=True)
class Prompt:
    """One earlier prompt the semantic level may match."""

    id: int
    reply_key: str
    prompt: str


class DiskLevel:
    def __init__(self, path: Path, max_bytes: int, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._total = 0  # bytes stored (replies + prompts), kept in step with every write
        self.hits = self.misses = self.evictions = 0
        self.set_aside: list[Path] = []  # corrupt files moved away, newest last
        self.unavailable = ""  # why the level is off (an unwritable folder), "" when it works
        self.on_reset: Callable[[], None] = lambda: None  # the semantic index forgets what it had

    # ---- the file ---------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection | None:
        if self._db is not None or self.unavailable:
            return self._db
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as e:  # not a database, malformed, or a schema we cannot read
            self._set_aside(e)
            try:
                self._db = self._connect()
            except (sqlite3.Error, OSError) as e2:
                self._off(e2)
        except OSError as e:
            self._off(e)
        return self._db

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=2.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {version}, this JARVIS reads {SCHEMA_VERSION}")
            db.executescript(SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._total = db.execute("SELECT (SELECT COALESCE(SUM(bytes), 0) FROM replies) + "
                                     "(SELECT COALESCE(SUM(bytes), 0) FROM prompts)").fetchone()[0]
        except BaseException:
            db.close()
            raise
        return db

    def _off(self, error: BaseException) -> None:
        self.unavailable = f"{self.path} cannot be opened ({error})"
        log.warning("The disk cache is off: %s. Replies are still cached in memory.", self.unavailable)

    def _set_aside(self, error: BaseException) -> None:
        """Move a corrupt file (and its WAL) out of the way; the next open starts an empty one."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                try:
                    source.replace(Path(f"{aside}{suffix}"))
                except OSError:
                    source.unlink(missing_ok=True)
        self.set_aside.append(aside)
        self._total = 0
        self.on_reset()
        log.warning("The disk cache %s was unreadable (%s): set aside as %s, starting an empty one.",
                    self.path, error, aside.name)

    def _run(self, work: Callable[[sqlite3.Connection], object], default=None):
        """Run `work` on the connection. Corrupt: set the file aside and retry once on a new one.
        Locked by another process (past the busy timeout): skip it this time, with a warning."""
        for attempt in (1, 2):
            db = self._open()
            if db is None:
                return default
            try:
                return work(db)
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    log.warning("The disk cache %s is locked by another process (%s): skipped this time.",
                                self.path, e)
                    return default
                if attempt == 2:
                    log.warning("The disk cache %s failed (%s): skipped.", self.path, e)
                    return default
                self._set_aside(e)
            except sqlite3.DatabaseError as e:  # malformed, not a database, ...
                if attempt == 2:
                    log.warning("The disk cache %s failed (%s): skipped.", self.path, e)
                    return default
                self._set_aside(e)
        return default

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ---- replies ----------------------------------------------------------------------------
    def get(self, key: str, count: bool = True) -> tuple[Reply, float] | None:
        """The live reply stored under `key` and the seconds it has left. `count`: counts as an L2
        hit or miss (the semantic level's own fetches do not)."""
        def work(db: sqlite3.Connection):
            now = self.clock()
            row = db.execute("SELECT body, expires FROM replies WHERE key = ?", (key,)).fetchone()
            if row is None or row[1] <= now:
                return None
            with db:
                db.execute("UPDATE replies SET used = ? WHERE key = ?", (now, key))
            return decode_reply(row[0]), row[1] - now

        try:
            reply = self._run(work)
        except (ValueError, TypeError, KeyError) as e:  # a row this version cannot decode: a miss
            log.warning("A disk cache entry could not be read (%s): ignored.", e)
            reply = None
        if count:
            if reply is None:
                self.misses += 1
            else:
                self.hits += 1
        return reply

    def put(self, key: str, model: str, kind: str, ttl_s: float, reply: Reply) -> None:
        body = encode_reply(reply)
        size = len(body.encode("utf-8")) + len(key) + 64
        if size > self.max_bytes:
            return  # one reply larger than the whole cache: not worth evicting everything for

        def work(db: sqlite3.Connection):
            now = self.clock()
            with db:
                old = db.execute("SELECT bytes FROM replies WHERE key = ?", (key,)).fetchone()
                db.execute("INSERT OR REPLACE INTO replies(key, model, kind, expires, used, bytes, body) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", (key, model, kind, now + ttl_s, now, size, body))
            self._total += size - (old[0] if old else 0)
            self._prune(db, now)

        self._run(work)

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        """On every write: drop what expired, then the least recently used until under the cap."""
        dropped_prompts = 0
        with db:
            for table in ("replies", "prompts"):
                gone = db.execute(f"DELETE FROM {table} WHERE expires <= ? RETURNING bytes", (now,)).fetchall()
                self._total -= sum(b for (b,) in gone)
                if table == "replies":
                    self.evictions += len(gone)
                else:
                    dropped_prompts += len(gone)
        while self._total > self.max_bytes:
            with db:
                victims, freed = [], 0  # the least recently used, just enough of them
                for key, size in db.execute("SELECT key, bytes FROM replies ORDER BY used"):
                    victims.append((key, size))
                    freed += size
                    if self._total - freed <= self.max_bytes:
                        break
                if not victims:
                    break
                keys = [k for k, _ in victims]
                marks = ",".join("?" * len(keys))
                db.execute(f"DELETE FROM replies WHERE key IN ({marks})", keys)
                prompts = db.execute(f"DELETE FROM prompts WHERE reply_key IN ({marks}) RETURNING bytes",
                                     keys).fetchall()
                self._total -= sum(b for _, b in victims) + sum(b for (b,) in prompts)
                self.evictions += len(victims)
                dropped_prompts += len(prompts)
        if self._total <= 0:
            self._total = 0
        if dropped_prompts:
            self.on_reset()  # the in-memory vectors are read again from what is left

    # ---- the semantic level's prompts -------------------------------------------------------
    def add_prompt(self, scope: str, reply_key: str, model: str, prompt: str, vector: np.ndarray,
                   ttl_s: float) -> int | None:
        blob = np.asarray(vector, dtype=np.float32).tobytes()
        size = len(blob) + len(prompt.encode("utf-8")) + 128

        def work(db: sqlite3.Connection):
            now = self.clock()
            with db:
                old = db.execute("SELECT bytes FROM prompts WHERE scope = ? AND reply_key = ?",
                                 (scope, reply_key)).fetchone()
                row = db.execute("INSERT OR REPLACE INTO prompts(scope, reply_key, model, prompt, vector, expires, "
                                 "bytes) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                                 (scope, reply_key, model, prompt, blob, now + ttl_s, size)).fetchone()
            self._total += size - (old[0] if old else 0)
            self._prune(db, now)
            return row[0]

        return self._run(work)

    def prompts(self, scope: str) -> tuple[list[Prompt], np.ndarray]:
        """Every live prompt of a scope and its vectors (one row each)."""
        def work(db: sqlite3.Connection):
            rows = db.execute("SELECT id, reply_key, prompt, vector FROM prompts WHERE scope = ? AND expires > ? "
                              "ORDER BY id", (scope, self.clock())).fetchall()
            if not rows:
                return [], np.zeros((0, 0), dtype=np.float32)
            matrix = np.stack([np.frombuffer(r[3], dtype=np.float32) for r in rows])
            return [Prompt(r[0], r[1], r[2]) for r in rows], matrix

        return self._run(work, default=([], np.zeros((0, 0), dtype=np.float32)))

    def prompt_alive(self, prompt_id: int) -> bool:
        def work(db: sqlite3.Connection):
            row = db.execute("SELECT 1 FROM prompts WHERE id = ? AND expires > ?", (prompt_id, self.clock())).fetchone()
            return row is not None

        return bool(self._run(work, default=False))

    # ---- management -------------------------------------------------------------------------
    def clear(self, model: str | None = None) -> int:
        """Delete every entry (of one model); returns how many replies went."""
        def work(db: sqlite3.Connection):
            where, args = ("WHERE model = ?", (model,)) if model else ("", ())
            with db:
                n = db.execute(f"DELETE FROM replies {where}", args).rowcount
                db.execute(f"DELETE FROM prompts {where}", args)
            self._total = db.execute("SELECT (SELECT COALESCE(SUM(bytes), 0) FROM replies) + "
                                     "(SELECT COALESCE(SUM(bytes), 0) FROM prompts)").fetchone()[0]
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return n

        n = self._run(work, default=0)
        self.on_reset()
        return n

    def counts(self) -> dict:
        def work(db: sqlite3.Connection):
            replies = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
            prompts = db.execute("SELECT COUNT(*) FROM prompts").fetchone()[0]
            return {"entries": replies, "prompts": prompts}

        exists = self._db is not None or self.path.exists()
        counts = self._run(work, default={"entries": 0, "prompts": 0}) if exists else {"entries": 0, "prompts": 0}
        return {**counts, "bytes": self._total, "max_bytes": self.max_bytes, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions, "path": str(self.path),
                "unavailable": self.unavailable, "set_aside": [str(p) for p in self.set_aside]}
