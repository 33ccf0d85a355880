"""The System Monitor tab. Once a second (while visible) it reads one snapshot of the hub's
history and the manager's and cache's stats, and updates charts and tables in place.

The refresh's main-thread cost is measured around it (`last_refresh_ms`, `refresh_ms` keeps the
last 60); bench/ui_bench.py reports it. It reads `hub.series.points()` (the same data as
`hub.history()`) so that it does not pay for 600 `dataclasses.asdict` copies a second.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QTabWidget, QVBoxLayout, QWidget

from jarvis.errors import JarvisError

from ui.async_bridge import TaskSet
from ui.monitor.benchmarks import BenchmarksPanel
from ui.monitor.charts import Charts
from ui.monitor.explorer import RequestExplorer
from ui.monitor.history_range import RangeBar, rollup_points
from ui.monitor.remotes import RemotesPanel
from ui.monitor.tables import CacheTable, ModelsTable, TotalsTable

HISTORY_S = 600


class MonitorView(QWidget):
    status_message = Signal(str)

    def __init__(self, runtime, parent=None, *, interval_ms: int = 1000) -> None:
        super().__init__(parent)
        self.runtime = runtime
        self.tasks = TaskSet()
        self.last_refresh_ms = 0.0
        self.refresh_ms: deque[float] = deque(maxlen=60)
        self.refreshes = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        self.range_bar = RangeBar()
        layout.addWidget(self.range_bar)
        self.charts = Charts()
        t = runtime.settings.telemetry
        self.charts.set_targets({"latency_p95_ms": t.target_latency_p95_ms, "latency_p99_ms": t.target_latency_p99_ms,
                                 "ttft_p95_ms": t.target_ttft_p95_ms})
        layout.addWidget(self.charts, 3)
        self.range_s = 0  # 0: the live 1 Hz history; else that many seconds of per-minute rollups
        self.rollup_rows: list[dict] = []
        self._rollups_at = 0.0
        self.range_bar.range_changed.connect(self.set_range)
        self.range_bar.export_csv_requested.connect(self._ask_csv)
        self.range_bar.export_png_requested.connect(self._ask_pngs)
        # Below the charts, one page at a time: the tables, the request explorer.
        self.details = QTabWidget()
        overview = QWidget()
        row = QHBoxLayout(overview)
        row.setContentsMargins(0, 4, 0, 0)
        self.models = ModelsTable()
        self.cache = CacheTable()
        self.totals = TotalsTable()
        row.addWidget(self.models, 3)
        row.addWidget(self.cache, 1)
        row.addWidget(self.totals, 1)
        self.details.addTab(overview, "Models and cache")
        self.explorer = RequestExplorer(runtime.hub.recent)
        self.details.addTab(self.explorer, "Requests")
        self.benchmarks = BenchmarksPanel(runtime, self.tasks)
        self.details.addTab(self.benchmarks, "Benchmarks")
        self.benchmarks.status_message.connect(self.status_message)
        self.remotes = RemotesPanel(runtime, self)  # "Remote engines": a page only when remotes are configured
        if self.remotes.has_servers:
            self.details.addTab(self.remotes, "Remote engines")
        layout.addWidget(self.details, 2)
        self.charts.second_clicked.connect(self.show_requests_of)
        self.details.currentChanged.connect(lambda _: self.explorer.refresh()
                                            if self.details.currentWidget() is self.explorer else None)
        self.models.unload_requested.connect(self.unload)
        self.cache.clear_requested.connect(self.clear_cache)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def prepare(self, geometry) -> None:
        """Lay the hidden tab out at `geometry` (the visible tab's) and draw the data once, so the
        first switch to it neither resizes ten charts nor fills them from empty."""
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QResizeEvent
        from PySide6.QtWidgets import QApplication

        self.setGeometry(geometry)
        # A hidden widget's layouts wait for its show: lay each level out by hand, top down.
        level = [self]
        while level:
            for widget in level:
                if widget.layout() is not None:
                    widget.layout().setGeometry(widget.rect())
            level = [c for w in level for c in w.findChildren(QWidget, options=Qt.FindDirectChildrenOnly)]
        # Each chart gets its resize now (pyqtgraph re-lays out its axes and view on it), not at the switch.
        for chart in self.charts.visible_charts():
            for widget in (chart, chart.viewport()):  # the view, then its viewport (which it sizes)
                QApplication.sendEvent(widget, QResizeEvent(widget.size(), widget.size()))
                widget.setAttribute(Qt.WA_PendingResizeEvent, False)
        self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.charts.reveal(extra=[self.range_bar, self.details])
        self.refresh(stagger=True)

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.charts.finish_reveal()

    def _tick(self) -> None:
        if self.isVisible():
            self.refresh(stagger=True)

    def refresh(self, *, stagger: bool = False) -> None:
        """`stagger` (the 1 Hz timer): the charts are drawn one at a time over the next ~0.4 s;
        a direct call draws them all now."""
        started = time.perf_counter()
        hub = self.runtime.hub
        assistant = self.runtime.assistant
        system = hub.latest_system()
        gpu = bool(system and system.gpu_available)
        if self.range_s == 0:
            self.charts.update_from(hub.series.points(HISTORY_S), gpu, stagger=stagger)
        elif time.monotonic() - self._rollups_at > 60:  # a new minute row, at most once a minute
            self._load_rollups()
        self.models.update_from(assistant.manager.loaded())
        counters = hub.perf.counters()
        self.cache.update_from(assistant.cache.stats(), counters)
        self.totals.update_from(counters)
        self.remotes.refresh()  # every tick, shown or not: it keeps the servers' history
        if self.details.currentWidget() is self.explorer:
            self.explorer.refresh()
        self.last_refresh_ms = (time.perf_counter() - started) * 1000
        self.refresh_ms.append(self.last_refresh_ms)
        self.refreshes += 1

    # ---- range and exports ----------------------------------------------------------------
    def set_range(self, seconds: int) -> None:
        self.range_s = seconds
        if seconds == 0:
            self.charts.live()
            self.refresh()
        else:
            self._load_rollups()

    def _load_rollups(self):
        """Read the rollups on a thread (SQLite never runs on the loop), then draw them."""
        self._rollups_at = time.monotonic()
        rollups, seconds = self.runtime.hub.rollups, self.range_s

        async def load() -> None:
            rows = [] if rollups is None else await asyncio.to_thread(rollups.rows, time.time() - seconds)
            if self.range_s != seconds:
                return  # the range changed meanwhile
            self.rollup_rows = rows
            system = self.runtime.hub.latest_system()
            self.charts.show_range(rollup_points(rows), seconds, bool(system and system.gpu_available))
            self.range_bar.note.setText(f"{len(rows)} minutes stored" if rollups is not None
                                        else "Rollups are off (telemetry.rollup_days = 0)")
        return self.tasks.spawn(load(), name="monitor-rollups")

    def export_rows(self) -> list[dict]:
        """What the charts show: the 1 Hz history, or the range's per-minute rollups."""
        return self.runtime.hub.history() if self.range_s == 0 else list(self.rollup_rows)

    def export_csv(self, path) -> Path:
        from jarvis.telemetry.export import to_csv
        path = Path(path)
        path.write_text(to_csv(self.export_rows()), encoding="utf-8")
        return path

    def export_pngs(self, folder) -> list[Path]:
        """One PNG per chart on screen, named after its title."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.charts.finish_reveal()  # every chart painted, not blank
        written = []
        for i, chart in enumerate(self.charts.visible_charts(), start=1):
            title = re.sub(r"<[^>]+>", "", chart.getPlotItem().titleLabel.text)
            path = folder / f"{i:02d}-{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}.png"
            chart.grab().save(str(path))
            written.append(path)
        return written

    def _ask_csv(self) -> None:
        from PySide6.QtWidgets import QFileDialog
        name, _ = QFileDialog.getSaveFileName(self, "Export the history as CSV", "jarvis-history.csv", "CSV (*.csv)")
        if name:
            self.status_message.emit(f"History written to {self.export_csv(name)}.")

    def _ask_pngs(self) -> None:
        from PySide6.QtWidgets import QFileDialog
        folder = QFileDialog.getExistingDirectory(self, "Export each chart as PNG into…")
        if folder:
            self.status_message.emit(f"{len(self.export_pngs(folder))} charts written to {folder}.")

    def show_requests_of(self, start: float, end: float) -> None:
        """A chart point was clicked: the explorer, with the requests of that second selected."""
        self.details.setCurrentWidget(self.explorer)
        n = self.explorer.select_between(start, end)
        self.status_message.emit(f"{n} request{'s' if n != 1 else ''} finished in that second.")

    def unload(self, name: str) -> None:
        async def run() -> None:
            try:
                await self.runtime.assistant.manager.unload(name)
                self.status_message.emit(f"Unloaded {name}.")
            except JarvisError as e:
                self.status_message.emit(str(e))
            self.refresh()
        self.tasks.spawn(run(), name=f"unload-{name}")

    def clear_cache(self) -> None:
        self.runtime.assistant.cache.clear()
        self.status_message.emit("Response cache cleared.")
        self.refresh()

    def stop(self) -> None:
        self.timer.stop()
