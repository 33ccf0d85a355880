"""The messages of one conversation in a scroll area. Adding a message adds one widget; streaming
touches only the streaming message's widget. The view follows the bottom while the user is there."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from ui.chat.message_widget import MessageWidget


class ConversationView(QScrollArea):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self._content = QWidget()
        self._content.setObjectName("conversation")
        self._content.setStyleSheet("QWidget#conversation { background: #f9fafb; }")
        self._layout = QVBoxLayout(self._content)
        self._layout.setContentsMargins(12, 12, 12, 12)
        self._layout.setSpacing(10)
        self.placeholder = QLabel("Start a conversation: type below and press Enter.")
        self.placeholder.setStyleSheet("color: #9ca3af; font-size: 14px;")
        self._layout.addWidget(self.placeholder)
        self._layout.addStretch(1)
        self.setWidget(self._content)
        self._follow = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range_changed)

    def messages(self) -> list[MessageWidget]:
        return [self._layout.itemAt(i).widget() for i in range(self._layout.count())
                if isinstance(self._layout.itemAt(i).widget(), MessageWidget)]

    def add(self, widget: MessageWidget) -> MessageWidget:
        self.placeholder.hide()
        self._layout.insertWidget(self._layout.count() - 1, widget)
        self._follow = True
        return widget

    def insert_before(self, widget: QWidget, before: QWidget | None) -> QWidget:
        """A widget (a tool call's card) just above another (the answer that made the call)."""
        index = self._layout.indexOf(before) if before is not None else -1
        self.placeholder.hide()
        self._layout.insertWidget(index if index >= 0 else self._layout.count() - 1, widget)
        self._follow = True
        return widget

    def remove(self, widget: MessageWidget) -> None:
        self._layout.removeWidget(widget)
        widget.deleteLater()
        self.placeholder.setVisible(not self.messages())

    def clear(self) -> None:
        widgets = [self._layout.itemAt(i).widget() for i in range(self._layout.count())]
        for widget in widgets:  # messages and tool cards
            if widget is not None and widget is not self.placeholder:
                self._layout.removeWidget(widget)
                widget.deleteLater()
        self.placeholder.show()

    def _scrolled(self, value: int) -> None:
        self._follow = value >= self.verticalScrollBar().maximum() - 4

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)
