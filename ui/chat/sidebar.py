"""The list of conversations: new, rename (in place), delete (asks first, without a modal exec),
and search over every chat (titles and messages). It shows what it is given, a page at a time:
scrolling near the end asks for the next page; the chat view owns the store."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QMessageBox,
                               QPushButton, QStyle, QStyledItemDelegate, QVBoxLayout, QWidget)

ID_ROLE = Qt.UserRole
SNIPPET_ROLE = Qt.UserRole + 1
SEARCH_DELAY_MS = 150  # typing pauses this long before a search runs: one search per word, not per key
MORE_MARGIN = 20  # rows from the end at which the next page is asked for


class _SnippetDelegate(QStyledItemDelegate):
    """A search hit: its title, and under it in grey the words around the match."""

    def sizeHint(self, option, index) -> QSize:
        size = super().sizeHint(option, index)
        if index.data(SNIPPET_ROLE):
            size.setHeight(size.height() + option.fontMetrics.height() + 2)
        return size

    def paint(self, painter, option, index) -> None:
        snippet = index.data(SNIPPET_ROLE)
        if not snippet:
            super().paint(painter, option, index)
            return
        self.initStyleOption(option, index)
        style = option.widget.style() if option.widget else None
        text = option.text
        option.text = ""
        if style is not None:
            style.drawControl(QStyle.CE_ItemViewItem, option, painter, option.widget)
        rect = option.rect.adjusted(4, 2, -4, -2)
        line = option.fontMetrics.height()
        selected = bool(option.state & QStyle.State_Selected)
        painter.save()
        painter.setPen(option.palette.color(QPalette.HighlightedText if selected else QPalette.Text))
        painter.drawText(QRect(rect.left(), rect.top(), rect.width(), line), Qt.AlignLeft | Qt.AlignVCenter,
                         option.fontMetrics.elidedText(text, Qt.ElideRight, rect.width()))
        if not selected:
            painter.setPen(option.palette.color(QPalette.PlaceholderText))
        painter.drawText(QRect(rect.left(), rect.top() + line + 2, rect.width(), line), Qt.AlignLeft | Qt.AlignVCenter,
                         option.fontMetrics.elidedText(snippet, Qt.ElideRight, rect.width()))
        painter.restore()


class Sidebar(QWidget):
    selected = Signal(int)
    new_requested = Signal()
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    search_changed = Signal(str)  # after the typing pauses
    more_requested = Signal()  # scrolled near the end of a list that has more

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(200)
        self.setMaximumWidth(280)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        self.new_button = QPushButton("+ New conversation")
        self.new_button.clicked.connect(self.new_requested)
        layout.addWidget(self.new_button)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search all chats…")
        self.search.setToolTip("Finds the words in every message and title")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(lambda: self.search_changed.emit(self.search.text()))
        self.search.textChanged.connect(self._search_timer.start)
        layout.addWidget(self.search)
        self.found = QLabel()  # "12 chats match" while searching
        self.found.setStyleSheet("color: #6b7280;")
        self.found.hide()
        layout.addWidget(self.found)
        self.list = QListWidget()
        self.list.setItemDelegate(_SnippetDelegate(self.list))
        self.list.setUniformItemSizes(False)
        # Long titles end in "…" within the width, never a sideways scroll (and snippets elide too).
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.ElideRight)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_edited)
        self.list.verticalScrollBar().valueChanged.connect(self._scrolled)
        layout.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.rename_button = QPushButton("Rename")
        self.rename_button.clicked.connect(self.begin_rename)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.confirm_delete)
        row.addWidget(self.rename_button)
        row.addWidget(self.delete_button)
        layout.addLayout(row)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b91c1c;")
        self.warning.hide()
        layout.addWidget(self.warning)
        self._filling = False
        self.has_more = False
        self._confirm: QMessageBox | None = None

    def show_warning(self, text: str) -> None:
        self.warning.setText(text)
        self.warning.show()

    # ---- filling -------------------------------------------------------------------------------
    def set_conversations(self, conversations, current_id: int | None, *, has_more: bool = False) -> None:
        """The list from the top (the first pages); `conversations` are Conversations."""
        self.found.hide()
        self._fill([(c, None) for c in conversations], current_id, clear=True)
        self.has_more = has_more

    def append_conversations(self, conversations, current_id: int | None, *, has_more: bool) -> None:
        """The next page, below what is shown."""
        self._fill([(c, None) for c in conversations], current_id, clear=False)
        self.has_more = has_more

    def set_results(self, hits, current_id: int | None, *, limit: int) -> None:
        """Search hits (SearchHit: a conversation and the words around its match)."""
        n = len(hits)
        self.found.setText("No chat matches" if n == 0 else
                           f"The {n} latest chats that match" if n >= limit else "1 chat matches" if n == 1 else f"{n} chats match")
        self.found.show()
        self._fill([(h.conversation, h.snippet) for h in hits], current_id, clear=True)
        self.has_more = False

    def _fill(self, rows, current_id: int | None, *, clear: bool) -> None:
        self._filling = True
        self.list.setUpdatesEnabled(False)
        try:
            if clear:
                self.list.clear()
            for conv, snippet in rows:
                item = QListWidgetItem(conv.title)
                item.setData(ID_ROLE, conv.id)
                if snippet:
                    item.setData(SNIPPET_ROLE, snippet)
                item.setToolTip(conv.title if not snippet else f"{conv.title}\n{snippet}")
                item.setFlags(item.flags() | Qt.ItemIsEditable)
                self.list.addItem(item)
                if conv.id == current_id:
                    self.list.setCurrentItem(item)
        finally:
            self.list.setUpdatesEnabled(True)
            self._filling = False

    def titles(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def ids(self) -> list[int]:
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    def snippets(self) -> list[str | None]:
        return [self.list.item(i).data(SNIPPET_ROLE) for i in range(self.list.count())]

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return item.data(ID_ROLE) if item else None

    def select_id(self, conversation_id: int | None) -> None:
        """Marks the row of `conversation_id` current (without asking to select it again)."""
        self._filling = True
        try:
            for i in range(self.list.count()):
                if self.list.item(i).data(ID_ROLE) == conversation_id:
                    self.list.setCurrentRow(i)
                    return
            self.list.setCurrentItem(None)
        finally:
            self._filling = False

    # ---- user actions --------------------------------------------------------------------------
    def _scrolled(self, _value: int) -> None:
        if not self.has_more or self._filling:
            return
        last = self.list.indexAt(self.list.viewport().rect().bottomLeft())
        if not last.isValid() or last.row() >= self.list.count() - MORE_MARGIN:
            self.more_requested.emit()

    def _current_changed(self, item, _previous) -> None:
        if item is not None and not self._filling:
            self.selected.emit(item.data(ID_ROLE))

    def begin_rename(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def _item_edited(self, item: QListWidgetItem) -> None:
        if not self._filling and item.text().strip():
            self.rename_requested.emit(item.data(ID_ROLE), item.text().strip())

    def confirm_delete(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        conv_id = item.data(ID_ROLE)
        box = QMessageBox(QMessageBox.Question, "Delete conversation",
                          f"Delete “{item.text()}” and all its messages?",
                          QMessageBox.Yes | QMessageBox.Cancel, self)
        # open(), not exec(): a nested event loop inside the qasync loop re-enters it (qasync #59).
        box.finished.connect(lambda result: result == QMessageBox.Yes and self.delete_requested.emit(conv_id))
        self._confirm = box
        box.open()
