"""One download in the downloads panel: name, progress bar, speed and ETA, Pause/Resume, Cancel.
It paints from the pull's own counters on the dialog's timer; the network runs on the pull's
thread, so the window never waits on it."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QPushButton, QWidget

from jarvis.downloads.background import BackgroundPull

STATE_TEXT = {"starting": "starting…", "listing": "asking the hub…", "downloading": "downloading",
              "verifying": "checking SHA-256 and GGUF header…", "done": "installed", "paused": "paused",
              "cancelled": "cancelled", "failed": "failed"}


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def breakable(text: str) -> str:
    """Let a word-wrapped label break REPO/PATH after each slash (a zero-width space): a long path
    otherwise keeps the label wider than the panel and its lines are cut off."""
    return text.replace("/", "/\u200b")


def human_eta(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(s)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


class DownloadRow(QWidget):
    finished = Signal(object)  # the row, once its pull is installed

    def __init__(self, job: BackgroundPull, parent=None) -> None:
        super().__init__(parent)
        self.job = job
        self._reported = False
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel(breakable(job.pull.label))
        self.title.setWordWrap(True)
        self.title.setStyleSheet("font-weight: 600;")
        grid.addWidget(self.title, 0, 0, 1, 3)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.setFormat("%p%")
        grid.addWidget(self.bar, 1, 0)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        grid.addWidget(self.pause_button, 1, 1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        grid.addWidget(self.cancel_button, 1, 2)
        self.status = QLabel("starting…")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #4b5563;")
        grid.addWidget(self.status, 2, 0, 1, 3)
        grid.setColumnStretch(0, 1)

    def toggle_pause(self) -> None:
        if self.job.alive:
            self.job.pause()
            self.pause_button.setEnabled(False)  # until the thread has stopped
        elif self.job.state in ("paused", "failed"):
            self.job.start()  # resumes from the partial file
        self.refresh()

    def cancel(self) -> None:
        self.job.cancel()
        self.refresh()

    def refresh(self) -> None:
        pull, p = self.job.pull, self.job.pull.progress
        self.title.setText(breakable(pull.label))
        state = pull.state
        if state == "cancelled":
            self.bar.setValue(0)  # its bytes are gone
        elif p.total:
            self.bar.setValue(int(1000 * p.done / p.total))
        sizes = f"{human_bytes(p.done)} of {human_bytes(p.total)}" if p.total else ""
        if state == "downloading":
            text = f"{sizes} · {human_bytes(p.speed())}/s · ETA {human_eta(p.eta_s())}"
        elif state in ("failed", "paused") and pull.error:
            text = f"{STATE_TEXT[state]}: {pull.error}" if state == "failed" else f"paused at {sizes}"
        else:
            text = STATE_TEXT.get(state, state) + (f" · {sizes}" if sizes and state not in ("done", "cancelled") else "")
        if state == "done":
            text = f"installed: {pull.plan.target.name if pull.plan else ''} — pick it in the chat's model list"
        self.status.setText(breakable(text))
        self.status.setStyleSheet("color: #b91c1c;" if state == "failed" else
                                  "color: #047857;" if state == "done" else "color: #4b5563;")
        running = self.job.alive
        stopping = running and pull.control.stopped
        self.pause_button.setText("Resume" if state in ("paused", "failed") and not running else "Pause")
        self.pause_button.setEnabled(not stopping and (running or state in ("paused", "failed")))
        self.cancel_button.setEnabled(state not in ("done", "cancelled") and not (stopping and pull.control.cancelled))
        if state == "done" and not running and not self._reported:
            self._reported = True
            self.finished.emit(self)

    @property
    def settled(self) -> bool:
        """No thread runs and nothing more will happen without the user."""
        return not self.job.alive and self.job.state in ("done", "cancelled", "failed", "paused")
