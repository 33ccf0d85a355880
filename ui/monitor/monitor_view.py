"""The System Monitor tab. Once a second (while visible) it reads one snapshot of the hub's
history and the manager's and cache's stats, and updates charts and tables in place.

The refresh's main-thread cost is measured around it (`last_refresh_ms`, `refresh_ms` keeps the
last 60); bench/ui_bench.py reports it. It reads `hub.series.points()` (the same data as
`hub.history()`) so that it does not pay for 600 `dataclasses.asdict` copies a second.
"""

from __future__ import annotations

import time
from collections import deque

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QTabWidget, QVBoxLayout, QWidget

from jarvis.errors import JarvisError

from ui.async_bridge import TaskSet
from ui.monitor.charts import Charts
from ui.monitor.explorer import RequestExplorer
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
        self.charts = Charts()
        layout.addWidget(self.charts, 3)
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

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    def _tick(self) -> None:
        if self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        started = time.perf_counter()
        hub = self.runtime.hub
        assistant = self.runtime.assistant
        system = hub.latest_system()
        self.charts.update_from(hub.series.points(HISTORY_S), bool(system and system.gpu_available))
        self.models.update_from(assistant.manager.loaded())
        counters = hub.perf.counters()
        self.cache.update_from(assistant.cache.stats(), counters)
        self.totals.update_from(counters)
        if self.details.currentWidget() is self.explorer:
            self.explorer.refresh()
        self.last_refresh_ms = (time.perf_counter() - started) * 1000
        self.refresh_ms.append(self.last_refresh_ms)
        self.refreshes += 1

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
