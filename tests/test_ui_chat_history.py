"""The chat's history at scale, in real widgets over a real SQLite file: the sidebar lists a page
at a time, search finds words in any message, and no SQLite call runs on the loop's thread.
None of these generates text: the model is never loaded."""

from __future__ import annotations

import threading

from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from jarvis.conversations import PAGE, ConversationStore


def _seed(path, n: int, *, words=None) -> list[int]:
    """n conversations of two messages, written before the desktop opens the file. `words`: the
    i-th conversation's question gets words(i) appended."""
    ids = []
    with ConversationStore(path) as store:
        for i in range(n):
            conv = store.create(f"Chat {i}")
            store.add_message(conv.id, "user", f"Question {i}. " + (words(i) if words else ""))
            store.add_message(conv.id, "assistant", f"Answer {i}.")
            ids.append(conv.id)
    return ids


def test_the_sidebar_lists_a_page_and_loads_the_next_as_it_scrolls(make_desktop, drive, ui_settings):
    _seed(ui_settings.database_path, 2 * PAGE + 50)
    d = make_desktop()
    sidebar = d.chat.sidebar
    assert sidebar.list.count() == PAGE and sidebar.titles()[0] == f"Chat {2 * PAGE + 49}"  # latest first
    assert d.chat.current_id == sidebar.ids()[0]  # the latest conversation is open
    assert [w.text for w in d.chat.view.messages()] == [f"Question {2 * PAGE + 49}. ", f"Answer {2 * PAGE + 49}."]
    sidebar.list.scrollToBottom()
    drive.wait(lambda: sidebar.list.count() == 2 * PAGE)
    sidebar.list.scrollToBottom()
    drive.wait(lambda: sidebar.list.count() == 2 * PAGE + 50)
    assert not sidebar.has_more
    assert sidebar.titles() == [f"Chat {i}" for i in reversed(range(2 * PAGE + 50))]  # no gap, no repeat


def test_search_finds_a_word_of_an_old_message_and_opens_its_chat(make_desktop, drive, ui_settings, tmp_path):
    _seed(ui_settings.database_path, 300,
          words=lambda i: "The zeppelin lands at dawn." if i == 3 else "Nothing to see.")
    d = make_desktop()
    d.window.resize(1100, 700)
    sidebar = d.chat.sidebar
    sidebar.search.setText("zeppel")  # as typed so far: a prefix of the word
    drive.wait(lambda: sidebar.titles() == ["Chat 3"])
    assert "[zeppelin]" in sidebar.snippets()[0] and sidebar.found.text() == "1 chat matches"
    d.window.grab().save(str(tmp_path / "sidebar-search.png"))
    sidebar.list.setCurrentRow(0)  # a click on the hit opens it
    drive.wait(lambda: d.chat.current_id is not None and d.chat.view.messages()
               and d.chat.view.messages()[0].text.startswith("Question 3."))

    sidebar.search.setText("")
    drive.wait(lambda: sidebar.list.count() == PAGE)
    assert not sidebar.found.isVisible()
    sidebar.search.setText("no such word anywhere")
    drive.wait(lambda: sidebar.found.text() == "No chat matches")
    assert sidebar.titles() == []


def test_a_new_message_is_found_and_no_sqlite_runs_on_the_loop(make_desktop, drive):
    d = make_desktop()
    chat = d.chat
    conv_id = drive.run(chat.new_conversation())
    drive.run(chat.store.add_message(conv_id, "user", "Where is the lighthouse keeper?"))
    drive.run(chat.rename(conv_id, "Coastal questions"))
    other = drive.run(chat.new_conversation())
    drive.run(chat.select(conv_id))
    chat.sidebar.search.setText("lighthouse")
    drive.wait(lambda: chat.sidebar.titles() == ["Coastal questions"])
    drive.run(chat.delete(other))
    chat.sidebar.search.setText("")
    drive.wait(lambda: chat.sidebar.titles() == ["Coastal questions"])
    # Every SQLite call of all that ran on the store's own thread; the store refuses any other.
    callers = drive.run(chat.store.callers())
    assert callers == {chat.store.thread_id}
    assert threading.main_thread().ident not in callers and threading.get_ident() not in callers


def test_a_long_conversation_opens_with_its_latest_messages_and_the_rest_on_request(make_desktop, drive, ui_settings):
    from ui.chat.chat_view import SHOWN_MESSAGES

    total = SHOWN_MESSAGES + 45

    def text(i: int) -> str:  # long enough to wrap at the narrowest width, not at the window's
        return f"Message {i}: " + "several words that make a line " * 4

    with ConversationStore(ui_settings.database_path) as store:
        conv = store.create("Long")
        for i in range(total):
            store.add_message(conv.id, "user" if i % 2 == 0 else "assistant", text(i))
    d = make_desktop()
    view = d.chat.view
    assert [w.text for w in view.messages()] == [text(i) for i in range(45, total)]
    assert view.earlier.isVisible() and view.earlier.text() == "Show 45 earlier messages"
    # As tall as its messages at this width, no more: the last one is at the bottom of the view,
    # not above a blank band (the layout's minimum is taken at the narrowest width).
    content = view.widget()
    drive.wait(lambda: content.height() == max(view.viewport().height(), content.heightForWidth(view.viewport().width())))
    assert content.height() < content.minimumSizeHint().height()
    view.earlier.click()
    assert [w.text for w in view.messages()] == [text(i) for i in range(total)]
    assert not view.earlier.isVisible()
