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

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QTabWidget, QVBoxLayout, QWidget

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
        self.export_dialog: QFileDialog | None = None  # the open Export dialog, if any
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
        self.tool_servers = None  # "Tools": per MCP server figures, once show_tool_servers gives the hub
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
        if self.tool_servers is not None and self.details.currentWidget() is self.tool_servers:
            self.tool_servers.refresh()
        if self.details.currentWidget() is self.explorer:
            self.explorer.refresh()
        self.last_refresh_ms = (time.perf_counter() - started) * 1000
        self.refresh_ms.append(self.last_refresh_ms)
        self.refreshes += 1

    def show_tool_servers(self, hub) -> None:
        """A "Tools" page: each MCP server's state, schema tokens, calls, errors and call latency."""
        from ui.monitor.tool_servers import ToolServersTable

        self.tool_servers = ToolServersTable(self.runtime.hub.perf, hub)
        self.details.addTab(self.tool_servers, "Tools")
        self.details.currentChanged.connect(lambda _: self.tool_servers.refresh()
                                            if self.details.currentWidget() is self.tool_servers else None)

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
            if rollups is None:
                note = "Rollups are off (telemetry.rollup_days = 0)"
            elif rollups.error:
                note = f"Rollups are off: {rollups.path} cannot be opened ({rollups.error})"
            else:
                note = f"{len(rows)} minutes stored"
            self.range_bar.note.setText(note)
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

    # Not QFileDialog.getSave…/getExisting…: those run a nested event loop, which re-enters the qasync
    # loop (qasync #59). A dialog instance shown with open() answers through its signal instead.
    def _ask_csv(self) -> QFileDialog:
        dialog = self._file_dialog("Export the history as CSV", QFileDialog.AnyFile)
        dialog.setAcceptMode(QFileDialog.AcceptSave)
        dialog.setNameFilter("CSV (*.csv)")
        dialog.setDefaultSuffix("csv")
        dialog.selectFile("jarvis-history.csv")
        dialog.fileSelected.connect(self._csv_chosen)
        dialog.open()
        return dialog

    def _ask_pngs(self) -> QFileDialog:
        dialog = self._file_dialog("Export each chart as PNG into…", QFileDialog.Directory)
        dialog.setOption(QFileDialog.ShowDirsOnly)
        dialog.fileSelected.connect(self._pngs_chosen)
        dialog.open()
        return dialog

    def _file_dialog(self, title: str, mode) -> QFileDialog:
        if self.export_dialog is not None:  # one at a time: a second click brings it back
            self.export_dialog.close()
            self.export_dialog.deleteLater()
        dialog = QFileDialog(self, title)
        dialog.setFileMode(mode)
        dialog.setWindowModality(Qt.WindowModal)  # blocks input to the window, not the event loop
        self.export_dialog = dialog
        return dialog

    def _csv_chosen(self, name: str) -> None:
        if name:
            try:
                self.status_message.emit(f"History written to {self.export_csv(name)}.")
            except OSError as e:
                self.status_message.emit(f"Could not write {name}: {e.strerror or e}. Pick another folder.")

    def _pngs_chosen(self, folder: str) -> None:
        if folder:
            try:
                self.status_message.emit(f"{len(self.export_pngs(folder))} charts written to {folder}.")
            except OSError as e:
                self.status_message.emit(f"Could not write into {folder}: {e.strerror or e}. Pick another folder.")

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
        cache = self.runtime.assistant.cache
        emptied = cache.clear()  # memory now; the disk file on the cache's own thread

        async def run() -> None:
            await asyncio.wrap_future(emptied)
            self.status_message.emit("Response cache cleared (memory, disk and semantic).")
            self.refresh()

        self.status_message.emit("Response cache cleared from memory; emptying the disk file…")
        self.tasks.spawn(run(), name="clear-cache")
        self.refresh()

    def stop(self) -> None:
        self.timer.stop()
