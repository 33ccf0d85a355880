"""The System Monitor's "Tools" page: per MCP server its state, enabled tools, the tokens their
schemas add to the prompt, and its calls, errors, refused calls and P50/P95 call latency.

It paints from two plain sources and asks no server anything: PerfMonitor's `tool_servers()` (the
figures folded from the request records, jarvis.telemetry.fold) and the hub's `statuses()` (state,
tools, last error, kept by the connections themselves). A server that was never used shows its state
with no figures yet.
"""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

COLUMNS = ["Server", "State", "Tools on", "Schema tokens", "Calls", "Errors", "Refused", "P50", "P95", "Last error"]
ERRORS_COLUMN = COLUMNS.index("Errors")
BAD_STATES = ("failed", "crashed", "hung")


def _ms(v) -> str:
    return "—" if v is None else f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


class ToolServersTable(QWidget):
    def __init__(self, perf, hub=None, parent=None) -> None:
        super().__init__(parent)
        self.perf, self.hub = perf, hub
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.note = QLabel("Calls, errors and refused (denied or bad arguments) since start; P50/P95 of each "
                           "call's own time over the last minutes; schema tokens in the last prompt with tools.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #6b7280;")
        layout.addWidget(self.note)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        layout.addWidget(self.table)

    def rows(self) -> list[list[str]]:
        """One row per server: every configured one (the hub's), then any other the records name."""
        figures = self.perf.tool_servers()
        statuses = {s.name: s for s in self.hub.statuses()} if self.hub is not None else {}
        out = []
        for name in list(statuses) + sorted(set(figures) - set(statuses)):
            f, st = figures.get(name, {}), statuses.get(name)
            tokens = f.get("schema_tokens")
            out.append([
                name, st.state if st else "—",
                f"{sum(t.enabled for t in st.tools)} of {len(st.tools)}" if st and st.tools else "—",
                "—" if tokens is None else str(tokens),
                str(f.get("calls", 0)), str(f.get("errors", 0)), str(f.get("refused", 0)),
                _ms(f.get("p50_ms")), _ms(f.get("p95_ms")), (st.last_error if st else "") or "",
            ])
        return out

    def refresh(self) -> None:
        rows = self.rows()
        if self.table.rowCount() != len(rows):
            self.table.setRowCount(len(rows))
        for i, cells in enumerate(rows):
            for j, text in enumerate(cells):
                item = self.table.item(i, j)
                if item is None:
                    item = QTableWidgetItem(text)
                    self.table.setItem(i, j, item)
                elif item.text() != text:
                    item.setText(text)
                bad = (j == ERRORS_COLUMN and text != "0") or (j == 1 and text in BAD_STATES)
                item.setForeground(QColor("#b91c1c" if bad else "#111827"))
