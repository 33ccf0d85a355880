"""A reasoning model's thinking, above its answer: one collapsed line ("Thinking…" while the model
thinks, "Thinking" once it answers); a click opens the thinking text, another closes it.

The text streams in as it comes; the message widget renders it at most once per frame, with its
answer (`refresh`). It is plain text (thinking is a draft, not formatted for reading), in grey.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget


class ThinkingSection(QWidget):
    def __init__(self, text: str = "", *, streaming: bool = False, parent=None) -> None:
        super().__init__(parent)
        self._text = text
        self._streaming = streaming
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.setSpacing(2)
        self.toggle = QToolButton()
        self.toggle.setCheckable(True)
        self.toggle.setAutoRaise(True)
        self.toggle.setCursor(Qt.PointingHandCursor)
        self.toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.RightArrow)
        self.toggle.setToolTip("Show or hide what the model thought before answering")
        self.toggle.setStyleSheet("QToolButton { color: #6b7280; font-style: italic; border: none; padding: 0; }")
        self.toggle.toggled.connect(self._expanded)
        layout.addWidget(self.toggle, 0, Qt.AlignLeft)
        self.body = QLabel()
        self.body.setTextFormat(Qt.PlainText)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.body.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        self.body.setStyleSheet("QLabel { color: #6b7280; border-style: solid; border-color: #d1d5db;"
                                " border-width: 0 0 0 3px; padding-left: 8px; }")  # a quote bar on its left
        self.body.hide()
        layout.addWidget(self.body)
        self.setVisible(bool(text.strip()))
        self._title()

    @property
    def text(self) -> str:
        return self._text

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def expanded(self) -> bool:
        return self.toggle.isChecked()

    def append(self, piece: str) -> None:
        """More thinking; shown at the next `refresh`."""
        self._text += piece

    def refresh(self) -> None:
        self.setVisible(bool(self._text.strip()))
        if self.expanded:
            self.body.setText(self._text)

    def set_text(self, text: str) -> None:
        self._text = text
        self.refresh()

    def finish(self) -> None:
        """The model answers now (or stopped): the title says it is done thinking."""
        self._streaming = False
        self._title()
        self.refresh()

    def _title(self) -> None:
        self.toggle.setText("Thinking…" if self._streaming else "Thinking")

    def _expanded(self, open_: bool) -> None:
        self.toggle.setArrowType(Qt.DownArrow if open_ else Qt.RightArrow)
        if open_:
            self.body.setText(self._text)
        self.body.setVisible(open_)
