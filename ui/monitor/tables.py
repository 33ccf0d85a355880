"""Tables under the charts: loaded models (with Unload), the response cache (with Clear), totals.
Cells are updated in place; rows are rebuilt only when the set of loaded models changes."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QFormLayout, QGroupBox, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout)

MODEL_COLUMNS = ["Model", "Load time", "Memory", "GPU layers", "Last used", "Unloads in", "Slots / queue", "Crashes",
                 ""]
CRASHES_COLUMN = MODEL_COLUMNS.index("Crashes")
MEMORY_COLUMN = MODEL_COLUMNS.index("Memory")


def _gpu_layers(m: dict) -> str:
    """"31/31" as llama.cpp's load log says it (layers on the GPU / the model's layers), "0/31" on
    the CPU; the bare count when the total is unknown."""
    on_gpu, layers = m.get("gpu_layers", 0), m.get("layers")
    return f"{on_gpu}/{layers}" if layers else str(on_gpu)


def _bytes(n) -> str:
    if not n:
        return "—"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _ago(ts) -> str:
    if not ts:
        return "—"
    s = max(0, time.time() - ts)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago"


def _memory(m: dict) -> tuple[str, str]:
    """The Memory cell, the weights and the prompts the engine saved (engine.prompt_cache_mb), and its tooltip."""
    weights, cache = m.get("memory_bytes"), m.get("prompt_cache") or {}
    if not cache.get("limit_bytes"):
        return _bytes(weights), "The model's weights. Saved prompts: off (engine.prompt_cache_mb = 0)"
    held = cache["bytes"]
    cell = f"{_bytes(weights)} + {_bytes(held)}" if held else _bytes(weights)
    tip = (f"The model's weights, plus its saved prompts: {cache['entries']} using "
           f"{_bytes(held) if held else '0 MiB'} of {_bytes(cache['limit_bytes'])}. {cache['restores']} requests "
           f"started from one ({cache['restored_tokens']} prompt tokens not prefilled again); "
           f"{cache['evictions']} dropped for room.")
    return cell, tip


def _duration(s) -> str:
    if s is None:
        return "never (keep-alive off)"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


class ModelsTable(QGroupBox):
    unload_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__("Loaded models", parent)
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, len(MODEL_COLUMNS))
        self.table.setHorizontalHeaderLabels(MODEL_COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        layout.addWidget(self.table)
        self.empty = QLabel("No model is loaded. The first message loads one (a cold start).")
        self.empty.setStyleSheet("color: #6b7280;")
        layout.addWidget(self.empty)
        self._names: list[str] = []

    def update_from(self, loaded: list[dict]) -> None:
        names = [m["name"] for m in loaded]
        if names != self._names:
            self._names = names
            self.table.setRowCount(len(names))
            for row, name in enumerate(names):
                for col in range(len(MODEL_COLUMNS) - 1):
                    self.table.setItem(row, col, QTableWidgetItem())
                button = QPushButton("Unload")
                button.clicked.connect(lambda _=False, n=name: self.unload_requested.emit(n))
                self.table.setCellWidget(row, len(MODEL_COLUMNS) - 1, button)
        self.empty.setVisible(not names)
        self.table.setVisible(bool(names))
        for row, m in enumerate(loaded):
            unloads = "—" if m.get("busy") else _duration(m.get("unloads_in_s"))
            memory, memory_tip = _memory(m)
            values = [m["name"], f"{m.get('load_ms', 0):.0f} ms", memory,
                      _gpu_layers(m), _ago(m.get("last_used")), unloads,
                      f"{m.get('active_slots', 0)}/{m.get('slots', '?')} · {m.get('queue_depth', 0)} queued",
                      str(m.get("crashes", 0))]
            for col, value in enumerate(values):
                item = self.table.item(row, col)
                if item.text() != value:
                    item.setText(value)
            memory_item = self.table.item(row, MEMORY_COLUMN)
            if memory_item.toolTip() != memory_tip:
                memory_item.setToolTip(memory_tip)
            # The last crash's reason, where the count is: it was reloaded since, so it is history.
            crash = self.table.item(row, CRASHES_COLUMN)
            tip = f"Last crash: {m['last_crash']}" if m.get("last_crash") else ""
            if crash.toolTip() != tip:
                crash.setToolTip(tip)
                crash.setForeground(Qt.red if tip else self.table.palette().text())


def _mb(n) -> str:
    return f"{(n or 0) / 2**20:.2f} MB"


class CacheTable(QGroupBox):
    """The response cache: entries and MB per level (memory, disk, semantic), hits by level."""

    clear_requested = Signal()
    FIELDS = [("size", "Memory (L1)"), ("disk", "Disk (L2)"), ("semantic", "Semantic"), ("hits", "Hits"),
              ("by_level", "  by level"), ("misses", "Misses"), ("hit_rate", "Hit rate"), ("evictions", "Evictions"),
              ("coalesced", "Coalesced")]

    def __init__(self, parent=None) -> None:
        super().__init__("Response cache", parent)
        form = QFormLayout(self)
        self.labels: dict[str, QLabel] = {}
        for key, title in self.FIELDS:
            self.labels[key] = QLabel("—")
            self.labels[key].setAlignment(Qt.AlignRight)
            form.addRow(title, self.labels[key])
        self.clear = QPushButton("Clear cache")
        self.clear.setToolTip("Empty every level: memory, the disk file and the semantic index")
        self.clear.clicked.connect(self.clear_requested)
        form.addRow(self.clear)

    def update_from(self, stats, counters: dict) -> None:
        """`stats`: what the cache holds (CacheStats, `levels` per level); `counters`: PerfMonitor's,
        where hits and misses are counted from the request records, as /metrics counts them."""
        hits, misses = counters.get("cache.hits", 0), counters.get("cache.misses", 0)
        rate = f"{hits / (hits + misses) * 100:.0f} %" if hits + misses else "—"
        levels = stats.levels or {}
        memory, disk, semantic = (levels.get(k, {}) for k in ("memory", "disk", "semantic"))
        values = {"size": f"{stats.size} / {stats.max_size} · {_mb(memory.get('bytes'))}",
                  "disk": f"{disk.get('entries', 0)} · {_mb(disk.get('bytes'))} of {_mb(disk.get('max_bytes'))}"
                  if not disk.get("unavailable") else "off (see the log)",
                  "semantic": f"{semantic.get('entries', 0)} prompts · {semantic.get('vetoes', 0)} vetoed"
                  if semantic.get("status") == "on" else "off",
                  "hits": str(hits), "misses": str(misses), "hit_rate": rate,
                  "by_level": f"memory {memory.get('hits', 0)} · disk {disk.get('hits', 0)} · "
                              f"semantic {semantic.get('hits', 0)}",
                  "evictions": f"{stats.evictions} · disk {disk.get('evictions', 0)}",
                  "coalesced": str(stats.coalesced)}
        if not stats.enabled:
            values.update(size="disabled", disk="disabled", semantic="disabled")
        for key, value in values.items():
            self.labels[key].setText(value)


class TotalsTable(QGroupBox):
    FIELDS = [("requests.total", "Requests"), ("requests.ok", "Completed"), ("requests.cancelled", "Stopped"),
              ("requests.error", "Errors"), ("tokens.prompt", "Prompt tokens"),
              ("tokens.completion", "Generated tokens"), ("starts.cold", "Cold starts"),
              ("models.loaded", "Model loads"), ("models.crashed", "Engine crashes")]

    def __init__(self, parent=None) -> None:
        super().__init__("Totals", parent)
        form = QFormLayout(self)
        self.labels: dict[str, QLabel] = {}
        for key, title in self.FIELDS:
            self.labels[key] = QLabel("0")
            self.labels[key].setAlignment(Qt.AlignRight)
            form.addRow(title, self.labels[key])

    def update_from(self, counters: dict) -> None:
        for key, label in self.labels.items():
            label.setText(f"{counters.get(key, 0):,}")
