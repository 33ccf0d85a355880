"""The request explorer: the last 1,000 finished requests (the hub's RecentRequests), sortable,
filterable, and selectable by a click on any chart (the requests of that second).

The rows live in a QStandardItemModel, so sorting and filtering run in C++ (a Python model would
call back into Python for every comparison: tens of ms for 1,000 rows, a visible stall). A refresh
adds only the records that are new since the last one (RecentRequests.version), at the top.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QTableView, QVBoxLayout, QWidget)

from jarvis.telemetry.records import RequestRecord

SORT_ROLE = Qt.UserRole + 1
TIMESTAMP_ROLE = Qt.UserRole + 2
REQUEST_ID_ROLE = Qt.UserRole + 3

# (title, how the record shows, the sort key)
COLUMNS = [
    ("Time", lambda r: time.strftime("%H:%M:%S", time.localtime(r.timestamp)), lambda r: r.timestamp),
    ("Model", lambda r: r.model, lambda r: r.model),
    ("Backend", lambda r: r.backend, lambda r: r.backend),
    ("Source", lambda r: r.source or "—", lambda r: r.source),
    ("Prompt tok", lambda r: str(r.prompt_tokens), lambda r: r.prompt_tokens),
    ("Completion tok", lambda r: str(r.completion_tokens), lambda r: r.completion_tokens),
    ("Queue", lambda r: f"{r.queue_ms:.0f} ms" + (f" (#{r.queue_position})" if r.queue_position else ""),
     lambda r: r.queue_ms),
    ("TTFT", lambda r: f"{r.ttft_ms:.0f} ms" if r.ttft_ms else "—", lambda r: r.ttft_ms),
    ("tok/s", lambda r: f"{r.decode_tokens_per_s:.1f}" if r.decode_tokens_per_s else "—",
     lambda r: r.decode_tokens_per_s),
    ("Total", lambda r: f"{r.total_ms:.0f} ms", lambda r: r.total_ms),
    ("Cache", lambda r: r.cache, lambda r: r.cache),
    # A request of the tool loop: the tool rounds before it in its turn, and their tool time.
    ("Tools", lambda r: f"{r.tool_rounds} round{'s' if r.tool_rounds != 1 else ''} · {r.tool_ms:.0f} ms"
     if r.tool_rounds else "—", lambda r: r.tool_ms),
    ("Status", lambda r: r.status if r.status == "ok" else f"{r.status}: {r.error_kind}" if r.error_kind else r.status,
     lambda r: r.status),
]
STATUS_COLUMN = len(COLUMNS) - 1
STATUS_FILTERS = ["all", "ok", "error", "cancelled"]


class RequestFilter(QSortFilterProxyModel):
    """Text over every column (case-insensitive) and a status choice."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.status = "all"
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(-1)
        self.setFilterCaseSensitivity(Qt.CaseInsensitive)

    def set_status(self, status: str) -> None:
        self.beginFilterChange()
        self.status = status
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent) -> bool:
        if self.status != "all":
            item = self.sourceModel().index(row, STATUS_COLUMN, parent)
            if self.sourceModel().data(item, SORT_ROLE) != self.status:
                return False
        return super().filterAcceptsRow(row, parent)


class RequestExplorer(QWidget):
    def __init__(self, recent, parent=None) -> None:
        super().__init__(parent)
        self.recent = recent  # jarvis.telemetry.recent.RecentRequests
        self._version = -1
        self._seen: set[str] = set()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter: model, backend, source, status, error…")
        self.filter.setClearButtonEnabled(True)
        self.status = QComboBox()
        self.status.addItems(STATUS_FILTERS)
        self.summary = QLabel()
        self.summary.setStyleSheet("color: #6b7280;")
        bar.addWidget(self.filter, 2)
        bar.addWidget(QLabel("Status"))
        bar.addWidget(self.status)
        bar.addWidget(self.summary, 1)
        layout.addLayout(bar)
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels([title for title, _, _ in COLUMNS])
        self.proxy = RequestFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.DescendingOrder)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        for col, width in enumerate([70, 170, 70, 60, 80, 100, 120, 70, 60, 80, 55, 110]):
            self.table.setColumnWidth(col, width)
        layout.addWidget(self.table)
        self.filter.textChanged.connect(self._filter_text)
        self.status.currentTextChanged.connect(self.proxy.set_status)

    def _filter_text(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        self._update_summary()

    # ---- data ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Add the records that are new since the last refresh (newest at the top)."""
        if self.recent.version == self._version:
            return
        self._version = self.recent.version
        fresh = [r for r in self.recent.records() if r.request_id not in self._seen]
        for r in reversed(fresh):  # oldest first, each inserted at the top
            self.model.insertRow(0, self._items(r))
            self._seen.add(r.request_id)
        overflow = self.model.rowCount() - self.recent.capacity
        if overflow > 0:  # the oldest are at the bottom of the model
            for row in range(self.model.rowCount() - overflow, self.model.rowCount()):
                self._seen.discard(self.model.item(row, 0).data(REQUEST_ID_ROLE))
            self.model.removeRows(self.model.rowCount() - overflow, overflow)
        self._update_summary()

    def _items(self, r: RequestRecord) -> list[QStandardItem]:
        items = []
        for _, show, key in COLUMNS:
            item = QStandardItem(show(r))
            item.setData(key(r), SORT_ROLE)
            item.setData(r.timestamp, TIMESTAMP_ROLE)
            items.append(item)
        items[0].setData(r.request_id, REQUEST_ID_ROLE)
        calls = "".join(f"\n{c.server}: {c.tool} {c.status}" + (f" {c.ms:.0f} ms" if c.ms else "") for c in r.tool_calls)
        items[0].setToolTip(f"{r.request_id} · {r.operation}" + (f"\n{r.prompt}" if r.prompt else "") + calls)
        if r.status != "ok":
            items[STATUS_COLUMN].setForeground(QColor("#b91c1c"))
        return items

    def _update_summary(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.summary.setText(f"{shown} of {total} requests" if shown != total else f"{total} requests")

    # ---- selection ----------------------------------------------------------------------
    def select_between(self, start: float, end: float) -> int:
        """Select the requests that finished in (start, end] (a chart point's second); returns how many."""
        self.refresh()
        selection = self.table.selectionModel()
        selection.clearSelection()
        first = None
        count = 0
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if start < self.proxy.data(index, TIMESTAMP_ROLE) <= end:
                selection.select(index, selection.SelectionFlag.Select | selection.SelectionFlag.Rows)
                if first is None:
                    first = index
                count += 1
        if first is not None:
            self.table.scrollTo(first)
        return count
