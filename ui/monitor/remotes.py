"""The System Monitor's "Remote engines" section: every configured remote and its replicas (state,
round trip, requests outstanding, JARVIS's queue in front of it) and what the servers report of
themselves at /metrics (vLLM, llama-server, another JARVIS): their queue, running requests and
KV-cache use, charted over the last ten minutes. A server without /metrics, or with metric names
JARVIS does not know, simply has no curve. Hidden when no remote is configured.

It paints from the backend registry's `status()` (plain dicts the 1 Hz scraper and the probes keep up to date);
it never asks a server anything itself.
"""

from __future__ import annotations

import math
import time
from collections import deque

import pyqtgraph as pg
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QTableWidget,
                               QTableWidgetItem, QVBoxLayout)

COLUMNS = ["Remote", "Replica", "State", "Round trip", "Outstanding", "JARVIS queue", "TTFT p50", "tok/s p50",
           "Server running", "Server waiting", "KV cache", "Last error"]
# TTFT and tok/s are JARVIS's own measure of the remote's requests (PerfMonitor's backend.NAME.* series)
COLORS = ["#2563eb", "#f59e0b", "#dc2626", "#059669", "#7c3aed"]
# (field of ServerMetrics, title, units, scale)
CHARTS = [("waiting", "Server queue", "requests", 1.0), ("running", "Server running", "requests", 1.0),
          ("kv_cache_usage", "Server KV cache", "%", 100.0)]
HISTORY = 600


def _num(v, fmt="{:.0f}") -> str:
    return "—" if v is None else fmt.format(v)


class RemotesPanel(QGroupBox):
    def __init__(self, runtime, parent=None) -> None:
        super().__init__("Remote engines", parent)
        self.runtime = runtime
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table)
        row = QHBoxLayout()
        self.charts: dict[str, pg.PlotWidget] = {}
        for field, title, units, _ in CHARTS:
            plot = pg.PlotWidget()
            plot.setMinimumSize(220, 120)
            plot.setTitle(f"<span style='font-size:9pt'>{title}</span>")
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setLabel("left", units)
            plot.addLegend(offset=(4, 4), labelTextSize="8pt")
            self.charts[field] = plot
            row.addWidget(plot)
        layout.addLayout(row)
        self.curves: dict[tuple[str, str], pg.PlotCurveItem] = {}  # (field, remote) -> curve
        self.history: dict[str, deque] = {}  # remote -> (time, {field: value})
        self.setVisible(self.has_servers)

    @property
    def has_servers(self) -> bool:
        """Any backend source reports a server (a remote's replicas): the page is worth showing."""
        return bool(self.servers())

    def servers(self) -> list[dict]:
        return [st for st in self.runtime.assistant.backends.status() if st.get("kind") == "server"]

    def refresh(self) -> None:
        statuses = self.servers()
        if not statuses:
            return
        perf = self.runtime.hub.perf
        rows = [(st, r) for st in statuses for r in st["replicas"]]
        if self.table.rowCount() != len(rows):
            self.table.setRowCount(len(rows))
        for i, (st, r) in enumerate(rows):
            m = r["server_metrics"] or {}
            kv = m.get("kv_cache_usage")
            cells = [st["name"], r["url"], "up" if r["reachable"] else r["state"],
                     _num(r["rtt_ms"], "{:.0f} ms"), str(r["outstanding"]),
                     f"{st['in_flight']}/{st['max_concurrency']} upstream, {st['queue_depth']} waiting",
                     _num(perf.stats(f"backend.{st['name']}.ttft")["p50_ms"], "{:.0f} ms"),
                     _num(perf.stats(f"backend.{st['name']}.decode_tokens_per_s", "tokens_per_s").get("p50_tokens_per_s"),
                          "{:.1f}"),
                     _num(m.get("running")), _num(m.get("waiting")), _num(None if kv is None else kv * 100, "{:.0f} %"),
                     r["last_error"] or ""]
            for j, text in enumerate(cells):
                item = self.table.item(i, j)
                if item is None:
                    self.table.setItem(i, j, QTableWidgetItem(text))
                elif item.text() != text:
                    item.setText(text)
        now = time.time()
        for k, st in enumerate(statuses):
            readings = [r["server_metrics"] for r in st["replicas"] if r["server_metrics"]]
            point = {}
            for field, _, _, scale in CHARTS:
                values = [x[field] for x in readings if x.get(field) is not None]
                if values:  # queue and running add up over replicas; KV use: the fullest replica
                    point[field] = (max(values) if field == "kv_cache_usage" else sum(values)) * scale
            history = self.history.setdefault(st["name"], deque(maxlen=HISTORY))
            history.append((now, point))
            for field, _, _, _ in CHARTS:
                if not any(field in p for _, p in history):
                    continue  # this server does not report it: no curve
                key = (field, st["name"])
                curve = self.curves.get(key)
                if curve is None:
                    curve = pg.PlotCurveItem(pen=pg.mkPen(COLORS[k % len(COLORS)], width=2), name=st["name"],
                                             connect="finite")
                    self.charts[field].addItem(curve)
                    self.curves[key] = curve
                xs = [t - now for t, _ in history]
                ys = [p.get(field, math.nan) for _, p in history]
                curve.setData(xs, ys)
