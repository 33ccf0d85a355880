"""Chat history in SQLite: conversations, their settings, and their messages.

Durability: WAL with synchronous=NORMAL. A commit is in the WAL file (the OS page cache) when it
returns, so it survives the app crashing or being killed; what NORMAL gives up against FULL is
only the last commits on a power loss or kernel crash, and it saves an fsync per message.

Threads: a store belongs to the thread that opened it (SQLite's own check_same_thread): a call
from any other thread raises ProgrammingError, so no lock is needed and none is waited on. Code
on an event loop uses `jarvis.conversations_async.AsyncConversationStore`, which opens one store
on a thread of its own and runs every call there. `callers` records which threads ran SQLite.

Search: titles by substring (LIKE, case folded in Python), messages by word through an FTS5 index
(`messages_fts`, external content: the text is stored once, in `messages`) that triggers keep in
step with every insert, edit and delete, cascades included.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

from jarvis.errors import ConversationNotFound, InvalidRequest, StorageError
from jarvis.request import ROLES, Message, Role
from jarvis.sampling import SamplingParams

Status = Literal["complete", "stopped", "error"]
STATUSES = ("complete", "stopped", "error")
MEMORY = ":memory:"

# MIGRATIONS[i] takes the schema from version i to i + 1 (PRAGMA user_version). Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            system_prompt TEXT NOT NULL DEFAULT '',
            temperature REAL,
            max_tokens INTEGER,
            top_p REAL,
            settings_json TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX conversations_by_update ON conversations (updated_at DESC, id DESC)",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            created_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'stopped', 'error')),
            meta_json TEXT NOT NULL DEFAULT '{}',
            position INTEGER NOT NULL,
            UNIQUE (conversation_id, position)
        )""",
    ),
    # 2: full-text search over every message. The prefix indexes answer search-as-you-type
    # ("zepp" -> zeppelin) from a stored list instead of merging every word that starts so: on 1 M
    # messages a common 5-letter prefix took 150 ms without, 1.5 ms with (+20 % file size).
    # The rebuild indexes what an older JARVIS stored.
    (
        """CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id',
            tokenize='unicode61 remove_diacritics 2', prefix='3 4 5 6')""",
        """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END""",
        """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        END""",
        """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END""",
        "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    ),
)
PAGE = 200  # conversations per sidebar page
SEARCH_LIMIT = 100  # conversations a search returns, the latest matches first

# Settings a conversation may override; None means "the app's default". The sampling ones are
# checked by SamplingParams, the same rule as the settings file and the HTTP API.
SAMPLING_SETTINGS = ("temperature", "max_tokens", "top_p")
_TEXT_SETTINGS = {
    "model": (lambda v: isinstance(v, str), "must be text"),
    "system_prompt": (lambda v: isinstance(v, str), "must be text"),
    "settings": (lambda v: isinstance(v, dict), "must be a dict"),
}
KNOWN_SETTINGS = (*_TEXT_SETTINGS, *SAMPLING_SETTINGS)


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    model: str = ""
    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredMessage:
    """A chat turn as stored: the Message plus its row's facts."""

    id: int
    conversation_id: int
    role: Role
    content: str
    created_at: float
    status: Status
    meta: dict[str, Any]  # the reply's record and stats line
    position: int

    @property
    def message(self) -> Message:
        return Message(self.role, self.content)


@dataclass(frozen=True)
class SearchHit:
    """A conversation a search found; `snippet` is the matching message's words around the match
    (None when only the title matched)."""

    conversation: Conversation
    snippet: str | None = None


def fts_query(text: str) -> str | None:
    """The user's words as an FTS5 query: each word a quoted phrase (their quotes, stars and
    operators are plain text), all required; the last one, being typed, also matches as a prefix
    once it has 3 characters ('dra' finds dragon). None when nothing searchable is left."""
    words = [w.replace('"', '""') for w in text.split() if w.strip('"')]
    terms = [f'"{w}"' + ("*" if i == len(words) - 1 and len(w) >= 3 else "") for i, w in enumerate(words)]
    return " ".join(terms) or None


def _validate_settings(fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name not in KNOWN_SETTINGS:
            raise InvalidRequest(f"{name!r} is not a conversation setting; known: {', '.join(KNOWN_SETTINGS)}.",
                                 field=name)
        if name in _TEXT_SETTINGS:
            check, rule = _TEXT_SETTINGS[name]
            if not check(value):
                raise InvalidRequest(f"{name} = {value!r} {rule}.", field=name)
    SamplingParams.check_fields({k: v for k, v in fields.items() if k in SAMPLING_SETTINGS})


def _validate_content(status: str, content: str) -> None:
    if status not in STATUSES:
        raise InvalidRequest(f"status {status!r} is not one of {', '.join(STATUSES)}.", field="status")
    if not isinstance(content, str):
        raise InvalidRequest("content must be text.", field="content")


def _json(value: dict[str, Any] | None, name: str) -> str:
    try:
        return json.dumps(value or {})
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"{name} cannot be stored as JSON: {exc}.", field=name) from None


def _like_pattern(text: str) -> str:
    """'50%_off' -> '%50\\%\\_off%': the user's % and _ match themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"], title=row["title"], created_at=row["created_at"], updated_at=row["updated_at"],
        model=row["model"], system_prompt=row["system_prompt"], temperature=row["temperature"],
        max_tokens=row["max_tokens"], top_p=row["top_p"], settings=json.loads(row["settings_json"]),
    )


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"], conversation_id=row["conversation_id"], role=row["role"], content=row["content"],
        created_at=row["created_at"], status=row["status"], meta=json.loads(row["meta_json"]),
        position=row["position"],
    )


class ConversationStore:
    """Every write is its own transaction, committed before the method returns."""

    def __init__(self, path: str | Path, *, migrations: Sequence[Sequence[str]] = MIGRATIONS):
        self.path = str(path)
        self._last_time = 0.0
        self._owner = threading.get_ident()
        self.callers: set[int] = set()  # thread idents that ran SQLite on this store
        self._conn = self._connect()
        try:
            self._refuse_newer_schema(len(migrations))  # first: a refused file is not even switched to WAL
            self._configure()
            self._migrate(migrations)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StorageError(self.path, str(exc)) from exc
        except StorageError:
            self._conn.close()
            raise

    @classmethod
    def open_or_memory(cls, path: str | Path) -> tuple[ConversationStore, str | None]:
        """The store at `path`, or an empty in-memory one plus a warning to show when that fails.

        The fallback never writes to `path`: whatever is stored there stays as it is.
        """
        try:
            return cls(path), None
        except StorageError as exc:
            return cls(MEMORY), f"{exc} Conversations are kept in memory only and will be lost on exit."

    # ---- opening --------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.path != MEMORY:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; writes say BEGIN/COMMIT themselves.
            # timeout: another JARVIS process writing the same file; never waited on by an event loop.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=5)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(self.path, str(exc)) from exc
        conn.row_factory = sqlite3.Row
        # Search folds case beyond ASCII, which SQLite's own LIKE does not.
        conn.create_function("casefold", 1, lambda s: s.casefold() if isinstance(s, str) else s, deterministic=True)
        return conn

    def _configure(self) -> None:
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")  # why: see the module docstring

    def _refuse_newer_schema(self, known: int) -> int:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > known:
            raise StorageError(self.path, f"its schema version {version} is newer than this JARVIS knows "
                               f"({known})", hint="Upgrade JARVIS, or set [conversations] database "
                               "in your settings to another file.")
        return version

    def _migrate(self, migrations: Sequence[Sequence[str]]) -> None:
        # This transaction writes user_version even with nothing to migrate: a file that cannot be
        # written fails here, at open, and not on the first message. The version is read again
        # under the write lock, as another JARVIS may have migrated meanwhile.
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._refuse_newer_schema(len(migrations))
            for target in range(version + 1, len(migrations) + 1):
                for statement in migrations[target - 1]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {len(migrations)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- plumbing -------------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        caller = threading.get_ident()
        if caller != self._owner:  # SQLite would refuse too; this says what to do instead
            raise RuntimeError(f"ConversationStore {self.path} belongs to the thread that opened it; "
                               f"from an event loop or another thread use AsyncConversationStore.")
        self.callers.add(caller)
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._db
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # disk full, file gone read-only, locked past the timeout
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(self.path, str(exc)) from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:  # e.g. locked past the timeout by another process
            raise StorageError(self.path, str(exc)) from exc

    def _now(self) -> float:
        """Wall-clock time that never repeats, so updated_at orders edits made within one clock tick."""
        self._last_time = max(time.time(), self._last_time + 1e-6)
        return self._last_time

    @staticmethod
    def _touch(conn: sqlite3.Connection, conversation_id: int, now: float) -> None:
        if conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)).rowcount == 0:
            raise ConversationNotFound("conversation", conversation_id)

    # ---- conversations --------------------------------------------------------------------------

    def create(self, title: str = "New conversation", *, model: str = "", system_prompt: str = "",
               temperature: float | None = None, max_tokens: int | None = None, top_p: float | None = None,
               settings: dict[str, Any] | None = None) -> Conversation:
        title = self._clean_title(title)
        _validate_settings({"model": model, "system_prompt": system_prompt, "temperature": temperature,
                            "max_tokens": max_tokens, "top_p": top_p, "settings": settings or {}})
        with self._write() as conn:
            now = self._now()
            cursor = conn.execute(
                "INSERT INTO conversations (title, created_at, updated_at, model, system_prompt, temperature,"
                " max_tokens, top_p, settings_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (title, now, now, model, system_prompt, temperature, max_tokens, top_p, _json(settings, "settings")),
            )
            return _conversation(conn.execute("SELECT * FROM conversations WHERE id = ?", (cursor.lastrowid,)).fetchone())

    def list(self, search: str | None = None) -> list[Conversation]:
        """Most recently updated first; `search` matches anywhere in the title, ignoring case."""
        if search:
            rows = self._read("SELECT * FROM conversations WHERE casefold(title) LIKE ? ESCAPE '\\'"
                              " ORDER BY updated_at DESC, id DESC", (_like_pattern(search.casefold()),))
        else:
            rows = self._read("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC")
        return [_conversation(row) for row in rows]

    def page(self, after: Conversation | None = None, limit: int = PAGE) -> list[Conversation]:
        """The next `limit` conversations in list order after `after` (None: from the top). Keyset
        paging on the (updated_at, id) index: page 50 costs what page 1 does."""
        if after is None:
            rows = self._read("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC LIMIT ?", (limit,))
        else:
            rows = self._read("SELECT * FROM conversations WHERE (updated_at, id) < (?, ?)"
                              " ORDER BY updated_at DESC, id DESC LIMIT ?", (after.updated_at, after.id, limit))
        return [_conversation(row) for row in rows]

    def count(self) -> int:
        return self._read("SELECT COUNT(*) FROM conversations")[0][0]

    def search(self, text: str, limit: int = SEARCH_LIMIT) -> list[SearchHit]:
        """Conversations whose title contains `text` or with a message that has its words (FTS5),
        most recently updated first, at most `limit`. Messages are walked newest first through the
        index in batches, so a word in half of a million messages costs no more than a rare one."""
        text = text.strip()
        if not text:
            return []
        titled = {row["id"] for row in self._read(
            "SELECT id FROM conversations WHERE casefold(title) LIKE ? ESCAPE '\\'"
            " ORDER BY updated_at DESC, id DESC LIMIT ?", (_like_pattern(text.casefold()), limit))}
        snippets: dict[int, str] = {}
        query = fts_query(text)
        if query is not None:
            self._search_messages(query, limit, snippets)
        ids = list(titled | snippets.keys())
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        rows = self._read(f"SELECT * FROM conversations WHERE id IN ({marks})"
                          " ORDER BY updated_at DESC, id DESC LIMIT ?", (*ids, limit))
        return [SearchHit(_conversation(row), snippets.get(row["id"])) for row in rows]

    def _search_messages(self, query: str, limit: int, snippets: dict[int, str], batch: int = 500) -> None:
        """Fills `snippets`: conversation id -> the words around the match in its newest matching
        message. FTS5 walks its index by rowid (the message id), newest first, and stops at each
        batch's LIMIT: no sort of every match, however common the word. Batches start small and
        double: two words that meet rarely need few rows, one word in every message needs more."""
        newest: dict[int, int] = {}  # conversation id -> message id
        below = None
        while len(newest) < limit:
            rows = self._read(
                "SELECT m.id, m.conversation_id FROM (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?"
                + ("" if below is None else " AND rowid < ?") + " ORDER BY rowid DESC LIMIT ?) AS f"
                " JOIN messages AS m ON m.id = f.rowid ORDER BY m.id DESC",
                (query, batch) if below is None else (query, below, batch))
            for message_id, conversation_id in rows:
                if len(newest) >= limit:
                    break
                newest.setdefault(conversation_id, message_id)
            if len(rows) < batch:
                break
            below = rows[-1][0]
            batch = min(batch * 2, 8000)
        if not newest:
            return
        by_message = {message_id: conv_id for conv_id, message_id in newest.items()}
        marks = ", ".join("?" for _ in by_message)
        for row in self._read(f"SELECT rowid, snippet(messages_fts, 0, '[', ']', '…', 10) FROM messages_fts"
                              f" WHERE messages_fts MATCH ? AND rowid IN ({marks})", (query, *by_message)):
            snippets[by_message[row[0]]] = row[1]

    def get(self, conversation_id: int) -> Conversation:
        rows = self._read("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        if not rows:
            raise ConversationNotFound("conversation", conversation_id)
        return _conversation(rows[0])

    def rename(self, conversation_id: int, title: str) -> Conversation:
        title = self._clean_title(title)
        with self._write() as conn:
            self._touch(conn, conversation_id, self._now())
            conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))
        return self.get(conversation_id)

    def delete(self, conversation_id: int) -> bool:
        """Deletes the conversation and its messages; False when it did not exist."""
        with self._write() as conn:
            return conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount > 0

    def update_settings(self, conversation_id: int, **fields: Any) -> Conversation:
        """Set model, system_prompt, temperature, max_tokens, top_p or settings (a dict, replaced whole)."""
        _validate_settings(fields)
        columns = {("settings_json" if k == "settings" else k): (_json(v, k) if k == "settings" else v)
                   for k, v in fields.items()}
        with self._write() as conn:
            self._touch(conn, conversation_id, self._now())
            if columns:
                assignments = ", ".join(f"{column} = ?" for column in columns)  # names come from KNOWN_SETTINGS
                conn.execute(f"UPDATE conversations SET {assignments} WHERE id = ?", (*columns.values(), conversation_id))
        return self.get(conversation_id)

    @staticmethod
    def _clean_title(title: str) -> str:
        if not isinstance(title, str) or not title.strip():
            raise InvalidRequest("A conversation title must be non-empty text.", field="title")
        return title.strip()

    # ---- messages -------------------------------------------------------------------------------

    def add_message(self, conversation_id: int, role: Role, content: str, status: Status = "complete",
                    meta: dict[str, Any] | None = None) -> StoredMessage:
        if role not in ROLES:
            raise InvalidRequest(f"role {role!r} is not one of {', '.join(ROLES)}.", field="role")
        _validate_content(status, content)
        meta_json = _json(meta, "meta")
        with self._write() as conn:
            now = self._now()
            self._touch(conn, conversation_id, now)
            position = conn.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM messages WHERE conversation_id = ?",
                                    (conversation_id,)).fetchone()[0]
            cursor = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, status, meta_json, position)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, now, status, meta_json, position),
            )
            return _message(conn.execute("SELECT * FROM messages WHERE id = ?", (cursor.lastrowid,)).fetchone())

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self._read("SELECT * FROM messages WHERE conversation_id = ? ORDER BY position", (conversation_id,))
        return [_message(row) for row in rows]

    def replace_message(self, message_id: int, content: str, status: Status = "complete",
                        meta: dict[str, Any] | None = None) -> StoredMessage:
        """New text, status and meta for one message (a regenerated or finished reply)."""
        _validate_content(status, content)
        meta_json = _json(meta, "meta")
        with self._write() as conn:
            row = conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise ConversationNotFound("message", message_id)
            conn.execute("UPDATE messages SET content = ?, status = ?, meta_json = ? WHERE id = ?",
                         (content, status, meta_json, message_id))
            self._touch(conn, row["conversation_id"], self._now())
            return _message(conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone())

    def update_last_assistant(self, conversation_id: int, content: str, status: Status = "complete",
                              meta: dict[str, Any] | None = None) -> StoredMessage:
        rows = self._read("SELECT id FROM messages WHERE conversation_id = ? AND role = 'assistant'"
                          " ORDER BY position DESC LIMIT 1", (conversation_id,))
        if not rows:
            raise InvalidRequest(f"Conversation {conversation_id} has no assistant message to update.",
                                 field="conversation_id")
        return self.replace_message(rows[0]["id"], content, status, meta)

    def delete_messages_after(self, message_id: int) -> int:
        """Drops every later message of the same conversation (edit-and-resend); returns how many."""
        with self._write() as conn:
            row = conn.execute("SELECT conversation_id, position FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise ConversationNotFound("message", message_id)
            self._touch(conn, row["conversation_id"], self._now())
            return conn.execute("DELETE FROM messages WHERE conversation_id = ? AND position > ?",
                                (row["conversation_id"], row["position"])).rowcount
