"""Seed a data folder with a large chat history: by default 10,000 conversations of 100 messages
(1 M messages), the scale issue 27 asks the desktop to hold. Not a test.

    .venv/bin/python -m bench.seed_conversations DATA_DIR [--conversations 10000] [--messages 100]

The file is the app's own (`DATA_DIR/conversations.sqlite3`, opened once by ConversationStore so
the schema and migrations are the real ones), then filled with executemany in one transaction.
The FTS triggers are set aside while the rows go in and the index is built once at the end
('rebuild'), which is what a row-at-a-time trigger would have built, in a fraction of the time.
Text is drawn from a fixed vocabulary with a fixed seed: the same figures on every machine.
The oldest message holds the one word no other message has (RARE_WORD), for the search bench.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from pathlib import Path

RARE_WORD = "zeppelin"
COMMON_WORD = "model"  # in the vocabulary's first ten: in about a tenth of all messages
_VOCABULARY = (
    "the model answer question token speed cache memory thread batch prompt reply python code list "
    "function value error file folder window chat search index table query write read start stop "
    "fast slow small large first last next every other some many few more less about again still "
    "light water river mountain garden kitchen coffee travel music history science planet animal "
    "forest ocean winter summer morning evening city village market letter story dragon castle "
    "engine network server client request response stream chunk record figure chart monitor disk"
).split()


def _text(rng: random.Random, words: int) -> str:
    # Zipf-like: early words far more often, as in real text.
    picks = rng.choices(_VOCABULARY, weights=[1 / (k + 1) for k in range(len(_VOCABULARY))], k=words)
    return " ".join(picks).capitalize() + "."


def seed(data_dir: Path, conversations: int = 10_000, messages: int = 100, seed: int = 7) -> Path:
    """Writes the history; returns the database's path. An existing file is replaced."""
    from jarvis.conversations import ConversationStore

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "conversations.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    ConversationStore(path).close()  # the real schema, migrations included
    rng = random.Random(seed)
    start = time.time() - 365 * 86400  # a year of chats, oldest first
    step = 365 * 86400 / max(1, conversations)
    meta = json.dumps({"stats": "smollm2 · 48 tokens · 80.0 tok/s · TTFT 120 ms · warm", "model": "smollm2"})
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        triggers = [sql for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'")]
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN")
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'"
                                    ).fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        message_id = 0
        for c in range(1, conversations + 1):
            created = start + c * step
            rows = []
            for p in range(1, messages + 1):
                message_id += 1
                text = _text(rng, rng.randint(6, 40))
                if message_id == 1:
                    text += f" The {RARE_WORD} lands at dawn."
                role = "user" if p % 2 else "assistant"
                rows.append((message_id, c, role, text, created + p, "complete", meta if role == "assistant" else "{}", p))
            conn.execute("INSERT INTO conversations (id, title, created_at, updated_at, model) VALUES (?, ?, ?, ?, ?)",
                         (c, f"Chat {c}: {_text(rng, 4)[:-1]}", created, created + messages, "smollm2"))
            conn.executemany("INSERT INTO messages (id, conversation_id, role, content, created_at, status, meta_json,"
                             " position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
        for sql in triggers:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100, help="messages per conversation")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = seed(args.data_dir, args.conversations, args.messages)
    print(f"{args.conversations:,} conversations, {args.conversations * args.messages:,} messages written to {path} "
          f"({path.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
