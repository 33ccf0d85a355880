"""One message: who said it, the Markdown body, a copy button, "copy code" links per code block,
and under an answer one quiet line of stats. While an answer streams, `append()` only stores text;
a timer re-renders this widget alone at most ~30 times a second."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout

from ui.chat import markdown

RENDER_INTERVAL_MS = 33  # ~30 Hz
STYLES = {
    "user": "QFrame#message { background: #e8f0fe; border-radius: 8px; }",
    "assistant": "QFrame#message { background: #ffffff; border: 1px solid #e5e7eb; border-radius: 8px; }",
    "error": "QFrame#message { background: #fef2f2; border: 1px solid #fca5a5; border-radius: 8px; }",
}


class MessageWidget(QFrame):
    def __init__(self, role: str, text: str = "", *, status: str = "complete", stats: str = "",
                 message_id: int | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("message")
        self.role = role
        self.message_id = message_id
        self.status = status
        self._text = text
        self._code_blocks: list[str] = []
        self._dirty = False
        self.renders = 0  # how many times the body was re-rendered (tests check the throttle)

        self.setStyleSheet(STYLES["error" if status == "error" else role])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)

        header = QHBoxLayout()
        self.who = QLabel("You" if role == "user" else "JARVIS")
        self.who.setStyleSheet("font-weight: bold; color: #374151;")
        header.addWidget(self.who)
        self.state = QLabel("")  # "waiting in queue", "thinking…", "stopped"
        self.state.setStyleSheet("color: #6b7280; font-style: italic;")
        header.addWidget(self.state)
        header.addStretch(1)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setFlat(True)
        self.copy_button.setCursor(Qt.PointingHandCursor)
        self.copy_button.setToolTip("Copy this message as Markdown")
        self.copy_button.clicked.connect(self.copy)
        header.addWidget(self.copy_button)
        layout.addLayout(header)

        self.body = QLabel()
        self.body.setTextFormat(Qt.RichText)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.LinksAccessibleByMouse)
        self.body.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        self.body.linkActivated.connect(self._link)
        layout.addWidget(self.body)

        self.stats = QLabel(stats)
        self.stats.setStyleSheet("color: #6b7280; font-size: 11px;")
        self.stats.setVisible(bool(stats))
        layout.addWidget(self.stats)

        self._timer = QTimer(self)
        self._timer.setInterval(RENDER_INTERVAL_MS)
        self._timer.timeout.connect(self._flush)
        self._render()
        if status == "stopped":
            self.state.setText("stopped")

    # ---- content -----------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self._text

    @property
    def code_blocks(self) -> list[str]:
        return list(self._code_blocks)

    def append(self, piece: str) -> None:
        """Streaming: store the text now, paint it at the next tick of the throttle."""
        self._text += piece
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def set_text(self, text: str) -> None:
        if text == self._text and not self._dirty:
            return
        self._text = text
        self._dirty = False
        self._render()

    def set_state(self, text: str) -> None:
        self.state.setText(text)

    def finish(self, *, status: str, stats: str = "") -> None:
        self._timer.stop()
        self.status = status
        if self._dirty:
            self._dirty = False
            self._render()
        self.state.setText({"stopped": "stopped", "error": ""}.get(status, ""))
        if status == "error":
            self.setStyleSheet(STYLES["error"])
            self.who.setText("Error")
        self.stats.setText(stats)
        self.stats.setVisible(bool(stats))

    def _flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self._render()
        else:
            self._timer.stop()

    def _render(self) -> None:
        self.renders += 1
        if self.role == "user":
            # What the user typed is shown as typed (no Markdown surprises), line breaks kept.
            from html import escape
            self.body.setText(escape(self._text).replace("\n", "<br>"))
            self._code_blocks = []
        else:
            body, self._code_blocks = markdown.render(self._text or " ")
            self.body.setText(body)

    # ---- copy --------------------------------------------------------------------------------
    def copy(self) -> None:
        QApplication.clipboard().setText(self._text)

    def _link(self, href: str) -> None:
        if href.startswith("copy:"):
            index = int(href.split(":", 1)[1])
            if 0 <= index < len(self._code_blocks):
                QApplication.clipboard().setText(self._code_blocks[index])
