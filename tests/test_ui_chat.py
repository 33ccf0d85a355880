"""The chat window against the real bundled model, on a qasync loop (see ui_support)."""

from __future__ import annotations

import re

from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

STATS = re.compile(r"· \d+ tokens · [\d.]+ tok/s · TTFT \d+ ms · (cached|warm|cold start \(load \d+ ms\))")


def _stored(drive, desktop, conv_id):
    return drive.run(desktop.store.messages(conv_id))


def test_send_streams_the_answer_and_shows_the_stats_line(make_desktop, drive, qtbot):
    d = make_desktop()
    d.chat.composer.input.setPlainText("Name three colors.")
    qtbot.keyClick(d.chat.composer.input, "\r")  # Enter sends
    drive.wait(lambda: bool(d.chat.answers))
    answer = next(iter(d.chat.answers.values()))
    assert d.chat.composer.send_button.text() == "Stop"
    drive.wait(answer.task.done)
    widgets = d.chat.view.messages()
    assert [w.role for w in widgets] == ["user", "assistant"]
    reply = widgets[-1]
    assert reply.text.strip() and reply.text == answer.text
    assert STATS.search(reply.stats.text()), reply.stats.text()
    assert "cold start" in reply.stats.text()  # the first request loaded the model
    assert answer.chunks > 1  # it streamed…
    assert reply.renders <= answer.chunks + 2  # …and the widget re-rendered at most once per chunk (throttled)
    assert d.chat.composer.send_button.text() == "Send"
    stored = _stored(drive, d, d.chat.current_id)
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert stored[1].content == reply.text and STATS.search(stored[1].meta["stats"])
    assert d.chat.sidebar.titles() == ["Name three colors."]


def test_shift_enter_is_a_new_line(make_desktop, qtbot):
    d = make_desktop()
    box = d.chat.composer.input
    qtbot.keyClicks(box, "one")
    from PySide6.QtCore import Qt
    qtbot.keyClick(box, Qt.Key_Return, Qt.ShiftModifier)
    qtbot.keyClicks(box, "two")
    assert box.toPlainText() == "one\ntwo" and not d.chat.answers


def test_stop_mid_answer_keeps_the_partial_text_saved_as_stopped(make_desktop, drive, ui_env):
    from jarvis.config import load_settings

    d = make_desktop(load_settings(environ={**ui_env, "JARVIS_GENERATION_MAX_TOKENS": "400"}))
    answer = drive.run(d.chat.send("Write a long story about a dragon and a knight."))
    drive.wait(lambda: len(answer.text) > 10)
    d.chat.composer.send_button.click()  # the Send button is Stop while answering
    drive.wait(answer.task.done)
    stored = _stored(drive, d, answer.conversation_id)[-1]
    assert stored.role == "assistant" and stored.status == "stopped"
    assert stored.content == answer.text and len(stored.content) > 10
    assert stored.meta["record"] is None or stored.meta["record"]["completion_tokens"] < 400
    widget = d.chat.view.messages()[-1]
    assert widget.state.text() == "stopped" and widget.text == stored.content
    assert d.chat.composer.send_button.text() == "Send"


def test_regenerate_replaces_the_last_answer_without_the_cache(make_desktop, drive):
    from ui.chat.message_widget import FRAME_MS

    d = make_desktop()
    first = drive.run(d.chat.send("Say hello."))
    assert first.request.stream_interval_ms == FRAME_MS  # its text comes a frame at a time, as it is painted
    drive.wait(first.task.done)
    old = _stored(drive, d, first.conversation_id)[-1]
    requests = d.runtime.hub.perf.counters().get("requests.total", 0)
    d.chat.composer.regenerate_button.click()
    drive.wait(lambda: first.conversation_id in d.chat.answers)
    second = d.chat.answers[first.conversation_id]
    assert second.request.use_cache is False
    drive.wait(second.task.done)
    stored = _stored(drive, d, first.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[-1].created_at > old.created_at and stored[-1].content.strip()  # (SQLite may reuse the id)
    assert "cached" not in stored[-1].meta["stats"] and "warm" in stored[-1].meta["stats"]
    assert d.runtime.hub.perf.counters()["requests.total"] == requests + 1
    assert [w.role for w in d.chat.view.messages()] == ["user", "assistant"]


def test_edit_and_resend_the_last_question(make_desktop, drive):
    d = make_desktop()
    first = drive.run(d.chat.send("What is 2 + 2?"))
    drive.wait(first.task.done)
    d.chat.composer.edit_button.click()
    drive.wait(lambda: d.chat.composer.input.toPlainText() == "What is 2 + 2?")
    assert d.chat.composer.editing_note.isVisible()
    second = drive.run(d.chat.send("What is 3 + 3?"))
    drive.wait(second.task.done)
    stored = _stored(drive, d, first.conversation_id)
    assert [(m.role, m.content) for m in stored][0] == ("user", "What is 3 + 3?")
    assert len(stored) == 2 and stored[1].status == "complete"


def test_conversations_renames_and_deletes_survive_a_restart(make_desktop, drive, ui_settings):
    d = make_desktop()
    a = drive.run(d.chat.send("First topic"))
    drive.wait(a.task.done)
    first_id = a.conversation_id
    second_id = drive.run(d.chat.new_conversation())
    b = drive.run(d.chat.send("Second topic"))
    drive.wait(b.task.done)
    third_id = drive.run(d.chat.new_conversation())
    drive.run(d.chat.rename(first_id, "Renamed topic"))
    drive.run(d.chat.delete(third_id))
    d.chat.sidebar.search.setText("renamed")  # a title
    drive.wait(lambda: d.chat.sidebar.titles() == ["Renamed topic"])
    d.chat.sidebar.search.setText("")
    drive.wait(lambda: len(d.chat.sidebar.titles()) == 2)
    drive.run(d.shutdown(), timeout_s=30)

    again = make_desktop(ui_settings)  # a second window over the same database
    titles = again.chat.sidebar.titles()
    assert sorted(titles) == ["Renamed topic", "Second topic"]
    drive.run(again.chat.select(first_id))
    widgets = again.chat.view.messages()
    assert [w.role for w in widgets] == ["user", "assistant"] and widgets[0].text == "First topic"
    assert STATS.search(widgets[1].stats.text())
    assert {c.id for c in drive.run(again.store.list())} == {first_id, second_id}


def test_a_corrupt_model_is_an_error_in_the_conversation_and_the_app_carries_on(make_desktop, drive, ui_env,
                                                                                tmp_path, model_path):
    from jarvis.config import load_settings

    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "half.gguf").write_bytes(model_path.read_bytes()[:5_000_000])
    d = make_desktop(load_settings(environ={**ui_env, "JARVIS_GENERAL_MODELS_DIRS": str(folder)}))
    conv = drive.run(d.chat.new_conversation())
    d.chat.settings_panel.model.setCurrentIndex(d.chat.settings_panel.model.findData("half"))
    assert drive.run(d.store.get(conv)).model == "half"  # asked after the change: the store's thread keeps order
    bad = drive.run(d.chat.send("hi"))
    drive.wait(bad.task.done)
    widget = d.chat.view.messages()[-1]
    assert widget.status == "error" and "half.gguf" in widget.text
    assert _stored(drive, d, conv)[-1].status == "error"
    d.chat.settings_panel.model.setCurrentIndex(0)  # back to the default model: it works
    good = drive.run(d.chat.send("Say hi."))
    drive.wait(good.task.done)
    stored = _stored(drive, d, conv)
    assert stored[-1].status == "complete" and stored[-1].content.strip()


def test_markdown_renders_headings_lists_tables_and_code_with_copy(make_desktop, qapp):
    from ui.chat.message_widget import MessageWidget

    make_desktop(show=False)  # the loop and the app exist
    text = "# Title\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```\n"
    w = MessageWidget("assistant", text)
    html = w.body.text()
    assert "<h1>" in html and "<li>" in html and "<td>1</td>" in html and "<pre" in html
    assert w.code_blocks == ["print('hi')"]
    w._link("copy:0")
    assert qapp.clipboard().text() == "print('hi')"
    w.copy()
    assert qapp.clipboard().text() == text
    assert "&lt;script&gt;" in MessageWidget("assistant", "<script>x</script>").body.text()


def test_closing_the_window_mid_answer_saves_it_stopped_and_exits_fast(make_desktop, drive, ui_env):
    from jarvis.config import load_settings

    d = make_desktop(load_settings(environ={**ui_env, "JARVIS_GENERATION_MAX_TOKENS": "400"}))
    answer = drive.run(d.chat.send("Write a long poem about the sea."))
    drive.wait(lambda: len(answer.text) > 5)
    d.window.close()
    assert not d.window.isVisible()  # gone at once; the runtime closes behind it
    drive.wait(d.closed.is_set)
    # Fast by construction: the answer was stopped (below), not waited for to run its 400 tokens
    # out. How long the close takes depends on the machine: the app logs it (shutdown_ms).
    print(f"\nclose mid-answer: {d.shutdown_ms}")
    assert d.runtime.assistant.manager.loaded() == []
    from jarvis.conversations import ConversationStore
    with ConversationStore(d.settings.database_path) as store:
        last = store.messages(answer.conversation_id)[-1]
    assert last.status == "stopped" and last.content == answer.text


def test_the_settings_panel_shows_the_configured_defaults_before_the_first_message(make_desktop, ui_settings):
    """Not the spin boxes' minimums (0.00, 1, 0.01), which a first message would have used."""
    d = make_desktop()
    panel, g = d.chat.settings_panel, ui_settings.generation
    assert (panel.temperature.value(), panel.max_tokens.value(), panel.top_p.value()) == \
        (g.temperature, g.max_tokens, g.top_p)
    assert panel.values()["temperature"] == g.temperature


def test_the_settings_panel_s_ranges_are_the_sampling_model_s(qapp):
    """The spin boxes reach exactly as far as SamplingParams allows: every value they can show is
    accepted, and the model's own ends are reachable (an open end is one step in)."""
    from jarvis.sampling import SamplingParams, bounds
    from ui.chat.settings_panel import SettingsPanel

    panel = SettingsPanel()
    try:
        for name in ("temperature", "max_tokens", "top_p"):
            box = getattr(panel, name)
            low, high, low_inclusive, high_inclusive = bounds(name)
            step = 10 ** -box.decimals() if hasattr(box, "decimals") else 1
            assert box.maximum() == (high if high_inclusive else high - step), name
            assert box.minimum() == (low if low_inclusive else low + step), name
            for value in (box.minimum(), box.maximum()):
                SamplingParams.checked({name: int(value) if name == "max_tokens" else value})
    finally:
        panel.deleteLater()
