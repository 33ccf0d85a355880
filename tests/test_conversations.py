"""ConversationStore against real SQLite files: persistence, search, ordering, crashes, bad paths."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from contextlib import closing
from pathlib import Path

import pytest

from jarvis.conversations import MIGRATIONS, ConversationStore
from jarvis.conversations_async import AsyncConversationStore
from jarvis.errors import ConversationNotFound, InvalidRequest, StorageError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "data" / "conversations.sqlite3"


@pytest.fixture
def store(db):
    with ConversationStore(db) as s:
        yield s


def pragma(path: Path, name: str):
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_create_list_rename_delete_persist_across_a_reopen(db):
    with ConversationStore(db) as first:
        a = first.create("First", model="smollm2", system_prompt="Be brief.", temperature=0.2)
        b = first.create("Second")
        first.rename(a.id, "First, renamed")
        first.create("Doomed")
        first.delete(first.list(search="doomed")[0].id)

    with ConversationStore(db) as second:
        titles = [c.title for c in second.list()]
        assert titles == ["First, renamed", "Second"]  # the rename made it the latest
        again = second.get(a.id)
        assert (again.model, again.system_prompt, again.temperature) == ("smollm2", "Be brief.", 0.2)
        assert second.get(b.id).title == "Second"


def test_search_is_case_insensitive_and_treats_percent_and_underscore_literally(store):
    store.create("50% off")
    store.create("500 items")
    store.create("snake_case")
    store.create("snakeXcase")
    store.create("Ärger im Büro")
    assert [c.title for c in store.list(search="50%")] == ["50% off"]
    assert [c.title for c in store.list(search="e_c")] == ["snake_case"]
    assert [c.title for c in store.list(search="SNAKE")] == ["snakeXcase", "snake_case"]
    assert [c.title for c in store.list(search="ärger")] == ["Ärger im Büro"]
    assert store.list(search="nothing like it") == []


def test_messages_keep_their_order_and_go_with_their_conversation(store, db):
    conv = store.create("Chat")
    other = store.create("Other")
    texts = ["hi", "hello!", "how fast?", "80 tok/s"]
    for i, text in enumerate(texts):
        store.add_message(conv.id, "user" if i % 2 == 0 else "assistant", text, meta={"i": i})
    store.add_message(other.id, "user", "elsewhere")

    messages = store.messages(conv.id)
    assert [m.content for m in messages] == texts
    assert [m.position for m in messages] == [1, 2, 3, 4]
    assert messages[3].meta == {"i": 3}

    assert store.delete(conv.id) is True
    assert store.messages(conv.id) == []
    with closing(sqlite3.connect(db)) as conn:  # ON DELETE CASCADE, seen from outside the store
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE conversation_id = ?", (conv.id,)).fetchone()[0] == 0
    assert [m.content for m in store.messages(other.id)] == ["elsewhere"]
    assert store.delete(conv.id) is False


def test_a_stopped_reply_keeps_its_partial_text_and_status(db):
    with ConversationStore(db) as store:
        conv = store.create("Stopped")
        store.add_message(conv.id, "user", "Tell me a long story")
        partial = store.add_message(conv.id, "assistant", "Once upon a", status="stopped",
                                    meta={"tokens": 3, "decode_tok_s": 81.5})
    with ConversationStore(db) as store:
        last = store.messages(conv.id)[-1]
        assert (last.id, last.content, last.status, last.meta) == (partial.id, "Once upon a", "stopped",
                                                                    {"tokens": 3, "decode_tok_s": 81.5})


def test_regenerate_and_edit_and_resend(store):
    conv = store.create("Edits")
    question = store.add_message(conv.id, "user", "2+2?")
    store.add_message(conv.id, "assistant", "5", status="error")
    fixed = store.update_last_assistant(conv.id, "4", status="complete", meta={"ttft_ms": 12})
    assert (fixed.content, fixed.status, fixed.meta) == ("4", "complete", {"ttft_ms": 12})
    store.add_message(conv.id, "user", "and 3+3?")
    store.add_message(conv.id, "assistant", "6")

    assert store.delete_messages_after(question.id) == 3
    assert [m.content for m in store.messages(conv.id)] == ["2+2?"]
    assert store.replace_message(question.id, "2+3?", "complete").content == "2+3?"
    with pytest.raises(InvalidRequest, match="no assistant message"):
        store.update_last_assistant(conv.id, "x")
    with pytest.raises(ConversationNotFound):
        store.replace_message(10_000, "x")


def test_wal_mode_and_integrity(store, db):
    conv = store.create("Pragmas")
    store.add_message(conv.id, "user", "hi")
    assert pragma(db, "journal_mode") == "wal"
    assert pragma(db, "integrity_check") == "ok"
    assert pragma(db, "user_version") == len(MIGRATIONS)


@pytest.mark.parametrize("field, value", [
    ("temperature", 5.5), ("temperature", -0.1), ("temperature", float("nan")), ("max_tokens", 0),
    ("max_tokens", 2.5), ("top_p", 0), ("top_p", 1.01), ("top_p", True), ("colour", "blue"),
])
def test_invalid_settings_name_the_field(store, field, value):
    conv = store.create("Settings")
    with pytest.raises(InvalidRequest) as raised:
        store.update_settings(conv.id, **{field: value})
    assert raised.value.field == field and field in str(raised.value)
    assert store.get(conv.id) == conv  # nothing half-applied


def test_valid_settings_are_stored_and_none_restores_the_default(store):
    conv = store.create("Settings")
    changed = store.update_settings(conv.id, temperature=0, max_tokens=64, top_p=1, settings={"top_k": 20})
    assert (changed.temperature, changed.max_tokens, changed.top_p, changed.settings) == (0, 64, 1, {"top_k": 20})
    assert store.update_settings(conv.id, temperature=None).temperature is None
    with pytest.raises(InvalidRequest):
        store.create("Bad", max_tokens=0)


def test_bad_messages_and_missing_conversations_are_refused(store):
    conv = store.create("Refusals")
    with pytest.raises(InvalidRequest) as raised:
        store.add_message(conv.id, "robot", "beep")
    assert raised.value.field == "role"
    with pytest.raises(InvalidRequest) as raised:
        store.add_message(conv.id, "assistant", "x", status="half")
    assert raised.value.field == "status"
    with pytest.raises(ConversationNotFound):
        store.add_message(conv.id + 100, "user", "to nowhere")
    with pytest.raises(InvalidRequest):
        store.rename(conv.id, "   ")
    assert store.messages(conv.id) == []


def test_another_thread_is_refused_with_what_to_use_instead(store):
    conv = store.create("Mine")
    errors = []

    def write():
        try:
            store.add_message(conv.id, "user", "from elsewhere")
        except RuntimeError as e:
            errors.append(str(e))

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "AsyncConversationStore" in errors[0]
    assert store.messages(conv.id) == [] and store.callers == {threading.get_ident()}


def test_concurrent_writers_through_the_async_store_keep_every_message_in_order(db):
    async def body():
        store = AsyncConversationStore(db)
        try:
            conv = await store.create("Writers")

            async def write(n):
                for i in range(25):
                    await store.add_message(conv.id, "user", f"{n}-{i}")

            await asyncio.gather(*(write(n) for n in range(4)))
            return await store.messages(conv.id)
        finally:
            await store.close()

    messages = asyncio.run(body())
    assert len(messages) == 100 and [m.position for m in messages] == list(range(1, 101))


def test_the_async_store_runs_sqlite_only_on_its_own_thread_and_keeps_everything_over_a_restart(db):
    loop_thread = threading.get_ident()

    async def first():
        store = AsyncConversationStore(db)
        assert await store.opened() is None
        conv = await store.create("Dragons")
        await store.add_message(conv.id, "user", "Tell me about the wyvern of Ardmore.")
        written = await store.add_message(conv.id, "assistant", "It guards a copper bridge.", meta={"i": 1})
        got = await store.messages(conv.id)  # a read right after the write sees it
        callers = await store.callers()
        with pytest.raises(RuntimeError, match="AsyncConversationStore"):  # the loop may not use it directly
            store._store.list()
        await store.close()
        with pytest.raises(StorageError, match="closed"):  # a late call is told so, not lost
            await store.list()
        return conv, written, got, callers, store.thread_id

    conv, written, got, callers, store_thread = asyncio.run(first())
    assert [m.content for m in got] == ["Tell me about the wyvern of Ardmore.", "It guards a copper bridge."]
    assert got[-1] == written
    assert callers == {store_thread} and loop_thread not in callers

    async def second():
        store = AsyncConversationStore(db)
        try:
            return (await store.list(), await store.messages(conv.id), await store.search("wyvern"),
                    await store.search("copper"))
        finally:
            await store.close()

    listed, messages, by_question, by_answer = asyncio.run(second())
    assert [c.title for c in listed] == ["Dragons"] and messages == got
    assert [h.conversation.id for h in by_question] == [conv.id] and "[wyvern]" in by_question[0].snippet
    assert [h.conversation.id for h in by_answer] == [conv.id] and "[copper]" in by_answer[0].snippet


def test_search_finds_old_and_new_messages_and_follows_edits_and_deletes(store, db):
    old = store.create("Old chat")
    first = store.add_message(old.id, "user", "The quick brown fox jumps over the lazy dog.")
    for i in range(50):  # newer chats without the word
        other = store.create(f"Chat {i}")
        store.add_message(other.id, "user", f"Something else entirely, number {i}.")
    assert [h.conversation.id for h in store.search("fox")] == [old.id]
    assert [h.conversation.id for h in store.search("FOX jumps")] == [old.id]  # every word, any case
    assert [h.conversation.id for h in store.search("fox jum")] == [old.id]  # the word being typed: a prefix
    assert store.search("jum fox") == []  # the words before it are whole words
    assert store.search("fox cat") == []

    new = store.create("New chat")
    store.add_message(new.id, "assistant", "Another fox, in the snow.")
    assert [h.conversation.id for h in store.search("fox")] == [new.id, old.id]  # latest first

    store.replace_message(first.id, "The quick brown cat.")
    assert [h.conversation.id for h in store.search("fox")] == [new.id]
    assert [h.conversation.id for h in store.search("cat")] == [old.id]
    store.delete(new.id)  # its messages go by cascade, and out of the index with them
    assert store.search("fox") == []
    assert [h.conversation.id for h in store.search("old chat")] == [old.id]  # the title counts too
    assert store.search("   ") == [] and store.search('"') == []
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")  # raises if stale


def test_an_old_database_without_search_is_indexed_by_the_migration(db):
    with ConversationStore(db, migrations=MIGRATIONS[:1]) as old:  # the schema before search existed
        conv = old.create("From last year")
        old.add_message(conv.id, "user", "Remember the marmalade recipe.")
    assert pragma(db, "user_version") == 1
    with ConversationStore(db) as store:
        assert [h.conversation.id for h in store.search("marmalade")] == [conv.id]
        store.add_message(conv.id, "assistant", "Seville oranges, sugar, lemon.")
        assert [h.conversation.id for h in store.search("seville")] == [conv.id]
    assert pragma(db, "user_version") == len(MIGRATIONS)


def test_pages_walk_the_whole_list_in_order_without_gaps(store):
    made = [store.create(f"Chat {i}") for i in range(25)]
    store.rename(made[3].id, "Renamed, so now the latest")
    seen, after = [], None
    while page := store.page(after, limit=7):
        seen += page
        after = page[-1]
    assert [c.id for c in seen] == [c.id for c in store.list()] and len(seen) == 25 == store.count()
    assert seen[0].id == made[3].id


CRASHING_WRITER = textwrap.dedent("""
    import os, signal, sys, threading
    from jarvis.conversations import ConversationStore
    store = ConversationStore(sys.argv[1])
    conv = store.create("Crash")
    print("conv", conv.id, flush=True)
    enough = threading.Event()

    def killer():  # the kill lands wherever the writing loop happens to be
        enough.wait()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=killer, daemon=True).start()
    for i in range(100_000):
        message = store.add_message(conv.id, "assistant", f"reply {i}", meta={"i": i})
        print(message.id, i, flush=True)
        if i == 50:
            enough.set()
""")


def test_killed_mid_write_loses_nothing_that_was_committed(db):
    result = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(db)], capture_output=True, text=True,
                            cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == -signal.SIGKILL, result.stderr
    lines = result.stdout.splitlines()
    conv_id = int(lines[0].split()[1])
    committed = {int(line.split()[0]): int(line.split()[1]) for line in lines[1:] if len(line.split()) == 2}
    assert len(committed) > 50

    assert pragma(db, "integrity_check") == "ok"
    with ConversationStore(db) as store:
        stored = {m.id: m for m in store.messages(conv_id)}
    for message_id, i in committed.items():
        assert stored[message_id].content == f"reply {i}" and stored[message_id].meta == {"i": i}


def _readonly_dir(tmp_path: Path) -> Path | None:
    """A directory this process cannot write to, or None when permissions do not bind (root)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder
    return None


def _assert_falls_back_to_memory(path):
    with pytest.raises(StorageError) as raised:
        ConversationStore(path)
    assert str(path) in str(raised.value) and raised.value.code == "storage_error"

    store, warning = ConversationStore.open_or_memory(path)
    with store:
        assert warning is not None and str(path) in warning and "memory" in warning
        conv = store.create("Still works")
        store.add_message(conv.id, "user", "hello")
        assert [m.content for m in store.messages(conv.id)] == ["hello"]
    assert not path.exists()


def test_a_path_that_cannot_be_created_falls_back_to_memory_with_a_warning(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    _assert_falls_back_to_memory(tmp_path / "afile" / "db.sqlite3")  # cannot be created, even by root


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores chmod; the test above covers the same fallback")
def test_a_read_only_folder_falls_back_to_memory_with_a_warning(tmp_path):
    folder = _readonly_dir(tmp_path)
    assert folder is not None
    _assert_falls_back_to_memory(folder / "db.sqlite3")


def test_a_file_that_is_not_a_database_is_left_untouched(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    path.write_bytes(b"my precious notes, not SQLite" * 100)
    before = path.read_bytes()
    store, warning = ConversationStore.open_or_memory(path)
    with store:
        assert warning and "not a database" in warning
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conversations.sqlite3"]


def test_a_database_from_a_newer_jarvis_is_refused_and_kept(db):
    ConversationStore(db).close()
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store, warning = ConversationStore.open_or_memory(db)
    store.close()
    assert "newer" in warning
    assert pragma(db, "user_version") == len(MIGRATIONS) + 1


def test_migrations_run_once_in_order(db):
    with ConversationStore(db) as store:
        store.create("Before the upgrade")
    upgrade = (*MIGRATIONS, ("ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",))
    with ConversationStore(db, migrations=upgrade) as store:
        assert [c.title for c in store.list()] == ["Before the upgrade"]
    assert pragma(db, "user_version") == len(upgrade)
    ConversationStore(db, migrations=upgrade).close()  # already there: no second ALTER


@pytest.mark.parametrize("field, value", [("temperature", 9), ("max_tokens", 10**6), ("top_p", 0), ("top_p", "0.5")])
def test_a_stored_setting_is_refused_by_the_same_rule_as_the_http_api(store, field, value):
    """One rule (jarvis.sampling): the same value gets the same error from a conversation and from /v1."""
    from jarvis.config import GenerationSettings
    from jarvis.http.openai_schema import chat_request

    if isinstance(value, str):  # JSON numbers are numbers; a stored one must be one too (no "0.5")
        with pytest.raises(InvalidRequest, match="top_p"):
            store.create("x", **{field: value})
        return
    with pytest.raises(InvalidRequest) as http:
        chat_request({"messages": [{"role": "user", "content": "hi"}], field: value}, GenerationSettings())
    with pytest.raises(InvalidRequest) as stored:
        store.create("x", **{field: value})
    assert str(stored.value) == str(http.value) and stored.value.field == http.value.field == field


def test_a_stored_message_is_the_chat_s_own_message(store):
    from jarvis.request import Message

    conv = store.create("Roles")
    store.add_message(conv.id, "user", "hi")
    (stored,) = store.messages(conv.id)
    assert stored.message == Message("user", "hi")
