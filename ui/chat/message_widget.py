"""One message: who said it, the Markdown body, a copy button, "copy code" links per code block,
above an answer its model's thinking (collapsed, ui.chat.thinking_section), and under an answer
one quiet line of stats.

While an answer streams, `append()` only stores text; the widget renders at most once per frame
(FRAME_MS), however many tokens came meanwhile. And it appends: the blocks that later text cannot
change (markdown.settled_end) are rendered once each into a label of their own, and each frame
re-renders only the block being written, so a long answer's re-layout stays the size of its last
paragraph instead of growing with the whole message. When the answer ends the body is rendered
whole, once (what a stored message shows when it is opened again).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout

from ui.chat import markdown
from ui.chat.markdown import settled_end
from ui.chat.thinking_section import ThinkingSection

FRAME_MS = 16  # at most one render per frame at 60 Hz
STYLES = {
    "user": "QFrame#message { background: #e8f0fe; border-radius: 8px; }",
    "assistant": "QFrame#message { background: #ffffff; border: 1px solid #e5e7eb; border-radius: 8px; }",
    "error": "QFrame#message { background: #fef2f2; border: 1px solid #fca5a5; border-radius: 8px; }",
}


def _gap_above(html: str) -> int:
    """The space Qt's rich text leaves above a part that follows another in one document:
    a paragraph's margin (12 px), none above a code block's table. Parts shown in labels of their
    own get it as a margin, so the answer looks the same while streaming and when done."""
    return 0 if html.startswith("<table") else 12


class MessageWidget(QFrame):
    def __init__(self, role: str, text: str = "", *, status: str = "complete", stats: str = "",
                 message_id: int | None = None, thinking: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("message")
        self.role = role
        self.message_id = message_id
        self.status = status
        self._text = text
        self._code_blocks: list[str] = []
        self._dirty = False
        self.renders = 0  # how many times the body was re-rendered (tests check the throttle)
        self._settled: list[QLabel] = []  # while streaming: one label per part that no longer changes
        self._settled_chars = 0  # how much of the text those labels show
        self._settled_code: list[str] = []  # their code blocks
        self.settled_renders = 0  # renders of settled parts (each is rendered once)

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
        self.thinking = ThinkingSection(thinking, streaming=status == "streaming")
        self._thinking_dirty = False
        layout.addWidget(self.thinking)

        self._parts = QVBoxLayout()  # while streaming, the settled parts above the body
        self._parts.setSpacing(0)
        layout.addLayout(self._parts)
        self.body = self._text_label()  # the whole message; while streaming, the part being written
        self._parts.addWidget(self.body)

        self.stats = QLabel(stats)
        self.stats.setStyleSheet("color: #6b7280; font-size: 11px;")
        self.stats.setVisible(bool(stats))
        layout.addWidget(self.stats)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)  # started by the first append after a render: one render per frame
        self._timer.setInterval(FRAME_MS)
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
        """Streaming: store the text now, render it at the next frame."""
        if self.thinking.streaming:  # the answer has begun: the thinking is over
            self.thinking.finish()
        self._text += piece
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def append_thinking(self, piece: str) -> None:
        """Streaming thinking: stored now, shown (when expanded) at the next frame."""
        self.thinking.append(piece)
        self._thinking_dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def set_text(self, text: str) -> None:
        if text == self._text and not self._dirty and not self._settled:
            return
        self._text = text
        self._dirty = False
        self._timer.stop()
        self._render()

    def set_state(self, text: str) -> None:
        self.state.setText(text)

    def finish(self, *, status: str, stats: str = "") -> None:
        self._timer.stop()
        self.status = status
        self._thinking_dirty = False
        self.thinking.finish()
        if self._dirty or self._settled:
            self._dirty = False
            self._render()
        self.state.setText({"stopped": "stopped", "error": ""}.get(status, ""))
        if status == "error":
            self.setStyleSheet(STYLES["error"])
            self.who.setText("Error")
        self.stats.setText(stats)
        self.stats.setVisible(bool(stats))

    def _flush(self) -> None:
        if self._thinking_dirty:
            self._thinking_dirty = False
            self.thinking.refresh()
        if self._dirty:
            self._dirty = False
            self._render_streaming()

    def _text_label(self) -> QLabel:
        label = QLabel()
        label.setTextFormat(Qt.RichText)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.LinksAccessibleByMouse)
        label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        label.linkActivated.connect(self._link)
        return label

    def _render_streaming(self) -> None:
        """One frame of a streaming answer: settle the blocks completed since the last frame
        (each into a new label, rendered once), then render the block being written."""
        if self.role == "user":
            return self._render()
        self.renders += 1
        end = settled_end(self._text)
        if end > self._settled_chars:
            body, code = markdown.render(self._text[self._settled_chars:end], len(self._settled_code))
            label = self._text_label()
            label.setText(body)
            label.setContentsMargins(0, _gap_above(body) if self._settled else 0, 0, 0)
            self._parts.insertWidget(self._parts.count() - 1, label)
            self._settled.append(label)
            self._settled_chars = end
            self._settled_code += code
            self.settled_renders += 1
        body, code = markdown.render(self._text[self._settled_chars:] or " ", len(self._settled_code))
        self.body.setContentsMargins(0, _gap_above(body) if self._settled else 0, 0, 0)
        self.body.setText(body)
        self._code_blocks = self._settled_code + code

    def _render(self) -> None:
        """The whole message into the body label (parts shown while streaming go)."""
        self.body.setContentsMargins(0, 0, 0, 0)
        for label in self._settled:
            self._parts.removeWidget(label)
            label.hide()  # now: deleteLater waits for the event loop, and would paint until then
            label.deleteLater()
        self._settled, self._settled_chars, self._settled_code = [], 0, []
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
