"""The monitor's "Benchmarks" page: run the short per-model suite (jarvis/bench/model_bench.py) on
any catalog model, and a table of every saved result, to compare models and runs on this computer.
The suite runs through the app's own Assistant (its requests show in the charts like any other);
the results file is read and written on a thread."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from jarvis.bench.model_bench import TABLE, run_model_bench
from jarvis.errors import JarvisError
from jarvis.telemetry.benchmarks import BenchmarkStore

from ui.async_bridge import TaskSet


class BenchmarksPanel(QWidget):
    status_message = Signal(str)

    def __init__(self, runtime, tasks: TaskSet, parent=None) -> None:
        super().__init__(parent)
        self.runtime = runtime
        self.tasks = tasks
        self.store = BenchmarkStore(runtime.settings.benchmarks_path)
        self.results: list[dict] = []
        self.running: asyncio.Task | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Model"))
        self.model = QComboBox()
        bar.addWidget(self.model, 2)
        self.run_button = QPushButton("Benchmark")
        self.run_button.setToolTip("Load time, memory, prompt tok/s, TTFT, decode tok/s with 1 and 4 requests "
                                   "(about half a minute on a small model); saved with this computer's details")
        bar.addWidget(self.run_button)
        self.progress = QLabel()
        self.progress.setStyleSheet("color: #6b7280;")
        bar.addWidget(self.progress, 3)
        layout.addLayout(bar)
        self.table = QTableWidget(0, len(TABLE))
        self.table.setHorizontalHeaderLabels([title for title, _ in TABLE])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table)
        self.run_button.clicked.connect(lambda: self.benchmark(self.model.currentText()))
        self._loaded = False

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh_models()
        if not self._loaded:
            self._loaded = True
            self.tasks.spawn(self.reload(), name="benchmarks-load")

    def refresh_models(self) -> None:
        names = [m.name for m in self.runtime.assistant.catalog.snapshot().models if m.ok and not m.embedding]
        if names != [self.model.itemText(i) for i in range(self.model.count())]:
            current = self.model.currentText()
            self.model.clear()
            self.model.addItems(names)
            if current in names:
                self.model.setCurrentText(current)

    async def reload(self) -> None:
        self.results = await asyncio.to_thread(self.store.load)
        self._fill()

    def _fill(self) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.results))
        for row, result in enumerate(reversed(self.results)):  # newest first
            for col, (_, show) in enumerate(TABLE):
                try:
                    text = show(result)
                except (KeyError, TypeError, ValueError):
                    text = "?"
                self.table.setItem(row, col, QTableWidgetItem(text))
        self.table.setSortingEnabled(True)

    def benchmark(self, name: str) -> asyncio.Task | None:
        if not name or (self.running is not None and not self.running.done()):
            return None

        async def run() -> None:
            self.run_button.setEnabled(False)
            try:
                result = await run_model_bench(self.runtime.assistant, name, progress=self.progress.setText,
                                               gpus=self._gpus())
                await asyncio.to_thread(self.store.save, result)
                self.progress.setText(f"{name}: decode {result['decode_tokens_per_s_1']:.1f} tok/s "
                                      f"(4 at once: {result['decode_tokens_per_s_4']:.1f}), saved.")
                await self.reload()
            except (JarvisError, OSError) as e:  # OSError: the results file could not be written
                self.progress.setText(f"{name}: {e}")
                self.status_message.emit(str(e))
            finally:
                self.run_button.setEnabled(True)

        self.running = self.tasks.spawn(run(), name=f"benchmark-{name}")
        return self.running

    def _gpus(self) -> list[str]:
        system = self.runtime.hub.latest_system()  # the sampler's last reading: no NVML on the loop
        return [g.name for g in system.gpus] if system else []
