"""The messages of one conversation in a scroll area. Adding a message adds one widget; streaming
touches only the streaming message's widget. The view follows the bottom while the user is there.
A long conversation opens with its latest messages; a button at the top brings the earlier ones."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QLayout, QPushButton, QScrollArea, QVBoxLayout, QWidget

from ui.chat.message_widget import MessageWidget


class ConversationView(QScrollArea):
    earlier_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self._content = QWidget()
        self._content.setObjectName("conversation")
        self._content.setStyleSheet("QWidget#conversation { background: #f9fafb; }")
        self._layout = QVBoxLayout(self._content)
        self._layout.setContentsMargins(12, 12, 12, 12)
        self._layout.setSpacing(10)
        # No minimum height from the layout: Qt computes it at the narrowest width, where every
        # message wraps most, and the scroll area kept a long conversation that tall (1,400 px of
        # blank below 30 messages). With a token minimum the scroll area sizes it by height-for-width.
        self._layout.setSizeConstraint(QLayout.SetNoConstraint)
        self._content.setMinimumHeight(1)
        self.earlier = QPushButton()
        self.earlier.setFlat(True)
        self.earlier.setStyleSheet("color: #2563eb;")
        self.earlier.clicked.connect(self.earlier_requested)
        self.earlier.hide()
        self._layout.addWidget(self.earlier)
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

    def set_earlier(self, count: int) -> None:
        """How many earlier messages are not shown (0: none, the button hides)."""
        self.earlier.setText(f"Show {count} earlier message{'s' if count != 1 else ''}")
        self.earlier.setVisible(count > 0)

    def prepend(self, widgets: list[MessageWidget]) -> None:
        """Earlier messages, above those shown, in order; the view stays where the user was."""
        first = self._layout.indexOf(self.placeholder) + 1
        for i, widget in enumerate(widgets):
            self._layout.insertWidget(first + i, widget)
        self._follow = False

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
            if widget is not None and widget not in (self.placeholder, self.earlier):
                self._layout.removeWidget(widget)
                widget.deleteLater()
        self.set_earlier(0)
        self.placeholder.show()

    def _scrolled(self, value: int) -> None:
        self._follow = value >= self.verticalScrollBar().maximum() - 4

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)
