"""The input box: Enter sends, Shift+Enter is a new line. Send turns into Stop while answering;
Regenerate and Edit work on the last exchange."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget


class _Input(QPlainTextEdit):
    submitted = Signal()

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and not event.modifiers() & Qt.ShiftModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class Composer(QWidget):
    send_requested = Signal(str)
    stop_requested = Signal()
    regenerate_requested = Signal()
    edit_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.answering = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 4, 12, 8)
        self.editing_note = QLabel("Editing your last question: Send replaces it and the answer after it.")
        self.editing_note.setStyleSheet("color: #b45309;")
        self.editing_note.hide()
        layout.addWidget(self.editing_note)
        row = QHBoxLayout()
        self.input = _Input()
        self.input.setPlaceholderText("Message JARVIS (Enter to send, Shift+Enter for a new line)")
        self.input.setFixedHeight(64)
        self.input.submitted.connect(self._submit)
        row.addWidget(self.input, 1)
        buttons = QVBoxLayout()
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self._send_or_stop)
        buttons.addWidget(self.send_button)
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Answer the last question again (bypasses the response cache)")
        self.regenerate_button.clicked.connect(self.regenerate_requested)
        buttons.addWidget(self.regenerate_button)
        self.edit_button = QPushButton("Edit last")
        self.edit_button.setToolTip("Edit your last question and send it again")
        self.edit_button.clicked.connect(self.edit_requested)
        buttons.addWidget(self.edit_button)
        row.addLayout(buttons)
        layout.addLayout(row)

    def set_answering(self, answering: bool) -> None:
        self.answering = answering
        self.send_button.setText("Stop" if answering else "Send")
        self.regenerate_button.setEnabled(not answering)
        self.edit_button.setEnabled(not answering)

    def set_editing(self, text: str | None) -> None:
        self.editing_note.setVisible(text is not None)
        if text is not None:
            self.input.setPlainText(text)
            self.input.setFocus()

    def _send_or_stop(self) -> None:
        if self.answering:
            self.stop_requested.emit()
        else:
            self._submit()

    def _submit(self) -> None:
        if self.answering:
            return
        text = self.input.toPlainText().strip()
        if text:
            self.input.clear()
            self.send_requested.emit(text)
