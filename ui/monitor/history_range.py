"""The bar above the charts: which range they show (the last 10 minutes at 1 Hz from memory, or
1 h / 24 h / 7 days of per-minute rollups from SQLite) and the exports (CSV, one PNG per chart)."""

from __future__ import annotations

from types import SimpleNamespace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

# (label, seconds; 0 = the live 1 Hz history)
RANGES = [("10 min (live, 1 s)", 0), ("1 hour", 3600), ("24 hours", 86400), ("7 days", 7 * 86400)]


def rollup_points(rows: list[dict]) -> list[SimpleNamespace]:
    """Per-minute rollup rows -> objects with the chart fields a SeriesPoint has (None where a
    minute has no such figure), stamped at the end of their minute."""
    points = []
    for r in rows:
        hits, misses = r.get("cache_hits") or 0, r.get("cache_misses") or 0
        points.append(SimpleNamespace(
            timestamp=r["minute"] + 60,
            latency_p50_ms=r.get("latency_p50_ms"), latency_p95_ms=r.get("latency_p95_ms"),
            latency_p99_ms=r.get("latency_p99_ms"), ttft_p50_ms=r.get("ttft_p50_ms"), ttft_p95_ms=r.get("ttft_p95_ms"),
            tokens_per_s=(r.get("completion_tokens") or 0) / 60, requests_per_s=(r.get("requests") or 0) / 60,
            cache_hit_rate=hits / (hits + misses) if hits + misses else None,
            queue_depth=r.get("queue_depth_max"), active_slots=None,
            cpu_percent=r.get("cpu_percent"), ram_percent=r.get("ram_percent"),
            gpu_util_pct=r.get("gpu_util_pct"), gpu_mem_used_bytes=r.get("gpu_mem_used_bytes"),
            gpu_mem_total_bytes=None, ui_stall_max_ms=r.get("ui_stall_max_ms"), ui_stall_p99_ms=None,
            loop_stall_max_ms=r.get("loop_stall_max_ms")))
    return points


class RangeBar(QWidget):
    range_changed = Signal(int)  # seconds; 0 = live
    export_csv_requested = Signal()
    export_png_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Range"))
        self.combo = QComboBox()
        for label, _ in RANGES:
            self.combo.addItem(label)
        row.addWidget(self.combo)
        self.note = QLabel()
        self.note.setStyleSheet("color: #6b7280;")
        row.addWidget(self.note, 1)
        self.csv = QPushButton("Export CSV…")
        self.png = QPushButton("Export charts (PNG)…")
        row.addWidget(self.csv)
        row.addWidget(self.png)
        self.combo.currentIndexChanged.connect(lambda i: self.range_changed.emit(RANGES[i][1]))
        self.csv.clicked.connect(self.export_csv_requested)
        self.png.clicked.connect(self.export_png_requested)

    @property
    def seconds(self) -> int:
        return RANGES[self.combo.currentIndex()][1]

    def select(self, seconds: int) -> None:
        self.combo.setCurrentIndex([s for _, s in RANGES].index(seconds))
