"""The "Get models" dialog against the loopback hub (tests/hub_server.py): the progress bar moves,
pause/resume continues with a Range request, cancel leaves nothing, a finished download is in the
chat's model picker at once, Delete asks first. The hub holds the body at a byte offset until the
test releases it, so every state is reached by construction, not by timing."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from tests.hub_server import FILE, REPO, gguf_file, hub  # noqa: F401 (fixtures)
from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

NAME = FILE.removesuffix(".gguf")


def _leftovers(settings) -> list[str]:
    """Partial files (the locks/ folder stays on purpose: deleting a lock file after release is a race)."""
    folder = settings.user_models_path.parent / "downloads"
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


def _start_held(d, hub, qtbot, half):
    dialog = d.open_get_models()
    hub.hold(half)
    dialog.repo_field.setText(REPO)
    qtbot.mouseClick(dialog.download_typed_button, Qt.LeftButton)
    row = dialog.rows[-1]
    return dialog, row


def test_progress_pause_resume_and_the_picker_shows_it(make_desktop, drive, qtbot, hub, gguf_file, ui_settings):
    d = make_desktop()
    half = len(gguf_file.data) // 2
    dialog, row = _start_held(d, hub, qtbot, half)
    drive.wait(lambda: row.job.pull.progress.done == half)
    drive.wait(lambda: row.bar.value() == 500)  # the bar follows the bytes (painted by the dialog's timer)
    assert "MB of" in row.status.text() and "ETA" in row.status.text()

    qtbot.mouseClick(row.pause_button, Qt.LeftButton)
    hub.release()  # the next bytes arrive, the pull sees the pause and stops
    drive.wait(lambda: row.settled and row.job.state == "paused")
    row.refresh()
    assert row.pause_button.text() == "Resume"
    assert d.chat.settings_panel.model.findData(NAME) == -1

    qtbot.mouseClick(row.pause_button, Qt.LeftButton)  # resume
    drive.wait(lambda: d.chat.settings_panel.model.findData(NAME) >= 0)
    assert [r for _, _, r in hub.gets()] == [None, f"bytes={half}-"]
    assert (ui_settings.user_models_path / FILE).read_bytes() == gguf_file.data
    assert _leftovers(ui_settings) == []
    assert "installed" in row.status.text() and not row.cancel_button.isEnabled()


def test_cancel_leaves_nothing_behind(make_desktop, drive, qtbot, hub, gguf_file, ui_settings):
    d = make_desktop()
    half = len(gguf_file.data) // 3
    dialog, row = _start_held(d, hub, qtbot, half)
    drive.wait(lambda: row.job.pull.progress.done == half)
    qtbot.mouseClick(row.cancel_button, Qt.LeftButton)
    hub.release()
    drive.wait(lambda: row.settled and row.job.state == "cancelled")
    assert _leftovers(ui_settings) == [] and not (ui_settings.user_models_path / FILE).exists()
    drive.wait(lambda: not dialog.timer.isActive())  # nothing left to paint: the timer stops itself


def test_delete_asks_first_and_updates_the_picker(make_desktop, drive, qtbot, model_copy, ui_settings):
    model_copy("mine", ui_settings.user_models_path)
    d = make_desktop()
    d.chat.refresh_models()
    assert d.chat.settings_panel.model.findData("mine") >= 0
    dialog = d.open_get_models()
    dialog.mine.setCurrentRow(0)
    qtbot.mouseClick(dialog.delete_button, Qt.LeftButton)
    [box] = [b for b in dialog.findChildren(QMessageBox) if b.isVisible()]  # the dialog's own question
    assert "Delete mine" in box.text()
    box.button(QMessageBox.Yes).click()
    drive.wait(lambda: not (ui_settings.user_models_path / "mine.gguf").exists())
    # The picker follows once the catalog's thread has rescanned.
    drive.wait(lambda: d.chat.settings_panel.model.findData("mine") == -1)
    assert dialog.mine.count() == 0


def test_the_dialog_checks_the_curated_pin(make_desktop, drive, qtbot, hub, gguf_file, ui_settings):
    """The curated list pins SmolLM2-135M Q4_K_M at 105,454,432 bytes; a hub that serves other bytes
    under that name is refused before a byte is fetched, and the row says why."""
    repo, file = "bartowski/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_K_M.gguf"
    hub.repos[repo] = {file: gguf_file}
    d = make_desktop()
    dialog = d.open_get_models()
    row_index = next(i for i, m in enumerate(dialog.curated) if (m.repo, m.file) == (repo, file))
    dialog.table.selectRow(row_index)
    qtbot.mouseClick(dialog.download_curated, Qt.LeftButton)
    row = dialog.rows[-1]
    drive.wait(lambda: row.settled and row.job.state == "failed")
    row.refresh()
    assert "curated list" in row.status.text() and "105,454,432" in row.status.text()
    assert hub.gets() == [] and not (ui_settings.user_models_path / file).exists()
