"""The list of conversations: new, rename (in place), delete (asks first, without a modal exec),
and search by title. It shows what it is given; the chat view owns the store."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QMessageBox,
                               QPushButton, QVBoxLayout, QWidget)

ID_ROLE = Qt.UserRole


class Sidebar(QWidget):
    selected = Signal(int)
    new_requested = Signal()
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    search_changed = Signal(str)

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
        self.search.setPlaceholderText("Search titles…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.search_changed)
        layout.addWidget(self.search)
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_edited)
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
        self._confirm: QMessageBox | None = None

    def show_warning(self, text: str) -> None:
        self.warning.setText(text)
        self.warning.show()

    def set_conversations(self, conversations, current_id: int | None) -> None:
        self._filling = True
        try:
            self.list.clear()
            for conv in conversations:
                item = QListWidgetItem(conv.title)
                item.setData(ID_ROLE, conv.id)
                item.setToolTip(conv.title)
                item.setFlags(item.flags() | Qt.ItemIsEditable)
                self.list.addItem(item)
                if conv.id == current_id:
                    self.list.setCurrentItem(item)
        finally:
            self._filling = False

    def titles(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return item.data(ID_ROLE) if item else None

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
