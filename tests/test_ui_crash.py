"""The desktop after an engine crash (a fault injected into a real step): the answer shows the error,
the model loads afresh on the next message, and the System Monitor shows the crash."""

from __future__ import annotations

import threading

from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from ui.monitor.tables import CRASHES_COLUMN


def test_the_monitor_shows_a_crash_and_the_next_message_reloads_the_model(make_desktop, drive, tmp_path):
    d = make_desktop()
    assistant = d.runtime.assistant
    model = assistant.default_model()
    first = drive.run(assistant.manager.load(model)).engine
    crash_now = threading.Event()

    def hook(_engine) -> None:
        if crash_now.is_set():
            raise RuntimeError("injected fault")

    first.step_hook = hook
    crash_now.set()
    failed = d.chat.send("Name a fruit.")
    drive.wait(failed.task.done)
    drive.wait(lambda: assistant.manager.engine_of(model) is None)

    answered = d.chat.send("Name a fruit.")
    drive.wait(answered.task.done)
    d.window.tabs.setCurrentWidget(d.monitor)
    d.monitor.refresh()
    d.window.grab().save(str(tmp_path / "monitor-after-crash.png"))

    errors = [m.content for m in d.chat.store.messages(failed.conversation_id) if m.status == "error"]
    assert len(errors) == 1 and "crashed (RuntimeError: injected fault)" in errors[0]
    assert answered.text.strip()
    assert assistant.manager.engine_of(model) is not first
    cell = d.monitor.models.table.item(0, CRASHES_COLUMN)
    assert cell.text() == "1" and "RuntimeError: injected fault" in cell.toolTip()
    assert d.monitor.totals.labels["models.crashed"].text() == "1"
