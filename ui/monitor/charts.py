"""pyqtgraph charts over the hub's history. Every curve is created once; a refresh only calls
setData on it (no items re-created). The history is mirrored into numpy arrays that take only the
points that are new since the last refresh, so a refresh costs a few array views, not 600 x 14
Python attribute reads."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QGraphicsItem, QGridLayout, QLabel, QStackedWidget, QWidget

pg.setConfigOptions(antialias=False, background="w", foreground="#374151")
GIB = 2**30
COLORS = ["#2563eb", "#f59e0b", "#dc2626", "#059669", "#7c3aed"]
NAN = math.nan
COLUMNS = 4
STAGGER_MS = 40
REVEAL_MS = 10
FRAME_MS = 16.0


class Chart(pg.PlotWidget):
    def __init__(self, title: str, units: str, series: list[tuple[str, str]], *, y_range=None) -> None:
        super().__init__()
        self.setMinimumSize(260, 150)
        self.setTitle(f"<span style='font-size:10pt'>{title}</span>")
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLabel("left", units)
        self.setLabel("bottom", "seconds ago")
        # Fixed axis width and ranges set by us, not pyqtgraph's auto-range: every auto-range
        # change re-lays out the axes and repaints the plot, which cost the loop tens of ms a
        # second under load (measured: ticker stalls of 100-230 ms with auto-range on).
        self.getAxis("left").setWidth(48)
        self.enableAutoRange(False)
        self.setXRange(-60, 0, padding=0)  # fit_x grows it with the history
        self.fixed_y = y_range is not None
        self.y_max = y_range[1] if y_range is not None else 1.0
        self.y_floor = 0.0  # fit_y never shrinks the y range below this (keeps a target line in view)
        self.targets: dict[str, tuple[float, pg.ScatterPlotItem]] = {}
        self.setYRange(0, self.y_max, padding=0.02)
        legend = self.addLegend(offset=(4, 4), labelTextSize="8pt") if len(series) > 1 else None
        if legend is not None:
            legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        self.curves: dict[str, pg.PlotDataItem] = {}
        for i, (field, label) in enumerate(series):
            style = Qt.DashLine if field.endswith("total_gib") else Qt.SolidLine
            curve = pg.PlotCurveItem(pen=pg.mkPen(COLORS[i % len(COLORS)], width=2, style=style), name=label,
                                     connect="finite")
            self.addItem(curve)  # a named item goes into the legend by itself
            self.curves[field] = curve
        self.x_span = 60
        # Axes, title and legend are painted from a pixmap that is redrawn only when they change:
        # drawing their text is two thirds of a full paint of the monitor (28 of 45 ms for its 16
        # axes). A forced full repaint of the visible monitor then costs ~4 ms. Qt drops these
        # caches when the tab is hidden, so the first paint after a tab switch still draws them all.
        plot = self.getPlotItem()
        for item in [plot.getAxis(side) for side in ("left", "bottom")] + [plot.titleLabel, legend]:
            if item is not None:
                item.setCacheMode(QGraphicsItem.DeviceCoordinateCache)

    def fit_y(self, peak: float) -> None:
        """Grow or shrink the y range to a round number above `peak`, only when it must change."""
        if self.fixed_y or not math.isfinite(peak):
            return
        target = max(self.y_floor, _nice_ceiling(peak * 1.1))
        if target > self.y_max or target < self.y_max / 4:
            self.y_max = target
            self.setYRange(0, self.y_max, padding=0.02)

    def fit_x(self, span_s: float) -> None:
        """Show the last minute, growing by whole minutes up to the 10-minute history."""
        target = int(min(600, max(60, math.ceil(span_s / 60) * 60)))
        if target != self.x_span:
            self.x_span = target
            self.setXRange(-target, 0, padding=0)

    def set_target(self, field: str, target_ms: float) -> None:
        """A dashed line at `target_ms` for the series `field`, and a red dot on every point above it."""
        color = self.curves[field].opts["pen"].color()
        self.addItem(pg.InfiniteLine(pos=target_ms, angle=0, movable=False,
                                     pen=pg.mkPen(color, width=1, style=Qt.DashLine),
                                     label=f"target {target_ms:g}", labelOpts={"position": 0.85, "color": color}))
        marks = pg.ScatterPlotItem(size=6, pen=None, brush=pg.mkBrush("#dc2626"))
        self.addItem(marks)
        self.targets[field] = (target_ms, marks)
        self.y_floor = max(self.y_floor, target_ms * 1.2)
        self.fit_y(0.0)

    def mark_breaches(self, field: str, x, y) -> int:
        """Mark the points of `field` above its target; returns how many there are."""
        target, marks = self.targets[field]
        with np.errstate(invalid="ignore"):
            over = y > target
        marks.setData(x[over], y[over])
        return int(over.sum())


# (title, units, [(field, legend)], y range or None)
LAYOUT = [
    ("Window responsiveness", "ms stall", [("ui_stall_max_ms", "UI max"), ("ui_stall_p99_ms", "UI P99"),
                                          ("loop_stall_max_ms", "loop max")], None),
    ("Latency", "ms", [("latency_p50_ms", "P50"), ("latency_p95_ms", "P95"), ("latency_p99_ms", "P99")], None),
    ("Time to first token", "ms", [("ttft_p50_ms", "P50"), ("ttft_p95_ms", "P95")], None),
    ("Tokens per second", "tok/s", [("tokens_per_s", "tokens/s")], None),
    ("Requests per second", "req/s", [("requests_per_s", "requests/s")], None),
    ("Response cache hit rate", "%", [("cache_hit_pct", "hit rate")], (0, 100)),
    ("CPU and RAM", "%", [("cpu_percent", "CPU"), ("ram_percent", "RAM")], (0, 100)),
    ("Queue and batch", "requests", [("queue_depth", "queue depth"), ("active_slots", "active slots")], None),
]
GPU_LAYOUT = [
    ("GPU utilisation", "%", [("gpu_util_pct", "util")], (0, 100)),
    ("GPU memory", "GiB", [("gpu_mem_used_gib", "used"), ("gpu_mem_total_gib", "total")], None),
]


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * 10**exponent:
            return float(step * 10**exponent)
    return float(10 ** (exponent + 1))


class SeriesBuffer:
    """The last `capacity` points of every field as float arrays (NaN where a value is None),
    filled incrementally. Storage is twice the capacity so appending is O(1) amortised."""

    def __init__(self, fields: list[str], capacity: int = 600) -> None:
        self.capacity = capacity
        self.fields = fields
        self._data = {f: np.full(2 * capacity, NAN) for f in ["timestamp", *fields]}
        self._end = 0
        self.last_timestamp = -math.inf

    def __len__(self) -> int:
        return min(self._end, self.capacity)

    def sync(self, points) -> int:
        """Append the points newer than the last one taken; returns how many."""
        new = []
        for p in reversed(points):
            if p.timestamp <= self.last_timestamp:
                break
            new.append(p)
        if not new:
            return 0
        new.reverse()
        new = new[-self.capacity:]
        if self._end + len(new) > len(self._data["timestamp"]):
            keep = self.capacity - len(new)
            for array in self._data.values():
                array[:keep] = array[self._end - keep:self._end]
            self._end = keep
        start, stop = self._end, self._end + len(new)
        self._data["timestamp"][start:stop] = [p.timestamp for p in new]
        for field in self.fields:
            self._data[field][start:stop] = [_derived(p, field) for p in new]
        self._end = stop
        self.last_timestamp = new[-1].timestamp
        return len(new)

    def view(self, field: str) -> np.ndarray:
        return self._data[field][max(0, self._end - self.capacity):self._end]


def _derived(p, field: str) -> float:
    if field == "cache_hit_pct":
        return NAN if p.cache_hit_rate is None else p.cache_hit_rate * 100
    if field == "gpu_mem_used_gib":
        return NAN if p.gpu_mem_used_bytes is None else p.gpu_mem_used_bytes / GIB
    if field == "gpu_mem_total_gib":
        return NAN if p.gpu_mem_total_bytes is None else p.gpu_mem_total_bytes / GIB
    value = getattr(p, field)
    return NAN if value is None else float(value)


def _tight_grid(parent: QWidget) -> QGridLayout:
    grid = QGridLayout(parent)
    grid.setContentsMargins(0, 0, 0, 0)
    grid.setSpacing(6)
    return grid


def _add_charts(grid: QGridLayout, layout, place) -> dict[str, "Chart"]:
    """One Chart per layout row, at place(index) -> (row, column); keyed by its first series."""
    charts: dict[str, Chart] = {}
    for i, (title, units, series, y_range) in enumerate(layout):
        chart = charts[series[0][0]] = Chart(title, units, series, y_range=y_range)
        grid.addWidget(chart, *place(i))
    return charts


def _set_blank(widget: QWidget, blank: bool) -> None:
    """Leave a widget out of the next paints, or bring it back. A chart (a graphics view) is
    hidden with its place kept: with its updates off its view would show black, or the chat's
    old pixels. Plain widgets (the range bar, the tables, the GPU note) only stop painting, so
    they stay visible to the rest of the code and the page background shows meanwhile."""
    if isinstance(widget, pg.GraphicsView):
        policy = widget.sizePolicy()
        if not policy.retainSizeWhenHidden():
            policy.setRetainSizeWhenHidden(True)
            widget.setSizePolicy(policy)
        widget.setVisible(not blank)
    else:
        widget.setUpdatesEnabled(not blank)


class Charts(QWidget):
    # A click on any chart: the second of the nearest point, as (previous point's time, its time].
    second_clicked = Signal(float, float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        grid = _tight_grid(self)
        self.charts = _add_charts(grid, LAYOUT, lambda i: (i // COLUMNS, i % COLUMNS))
        # One frame at 60 Hz: a UI stall above it is a dropped frame the user can see.
        responsiveness = self.charts["ui_stall_max_ms"]
        responsiveness.addItem(pg.InfiniteLine(pos=FRAME_MS, angle=0, movable=False,
                                               pen=pg.mkPen("#9ca3af", width=1, style=Qt.DashLine),
                                               label="1 frame", labelOpts={"position": 0.15, "color": "#6b7280"}))
        responsiveness.y_max = responsiveness.y_floor = 2 * FRAME_MS
        responsiveness.setYRange(0, responsiveness.y_max, padding=0.02)
        self.gpu_stack = QStackedWidget()
        self.no_gpu = QLabel("<b>No GPU detected</b>: no NVIDIA driver (NVML) answered on this machine, so "
                             "models run on the CPU. GPU charts appear when a GPU is present.")
        self.no_gpu.setAlignment(Qt.AlignCenter)
        self.no_gpu.setStyleSheet("background: #f9fafb; border: 1px dashed #9ca3af; color: #4b5563; padding: 12px;")
        self.gpu_stack.addWidget(self.no_gpu)
        gpu_page = QWidget()
        self.gpu_charts = _add_charts(_tight_grid(gpu_page), GPU_LAYOUT, lambda i: (0, i))
        self.gpu_stack.addWidget(gpu_page)
        rows = math.ceil(len(LAYOUT) / COLUMNS)
        grid.addWidget(self.gpu_stack, rows, 0, 1, COLUMNS)
        for row in range(rows):
            grid.setRowStretch(row, 1)
        self._gpu_row = rows
        self._grid = grid
        self._show_gpu(False)
        self._all = list(self.charts.values()) + list(self.gpu_charts.values())
        for chart in self._all:
            chart.scene().sigMouseClicked.connect(lambda event, c=chart: self._clicked(c, event))
        self.buffer = SeriesBuffer([f for chart in self._all for f in chart.curves])
        self.static = False  # showing a fixed range (rollups), not the live history
        self._redraw = False
        self._pending: list[Chart] = []  # charts still to draw, one per STAGGER_MS
        self._stagger = QTimer(self)
        self._stagger.setInterval(STAGGER_MS)
        self._stagger.timeout.connect(self._draw_next)
        self._hidden: list[QWidget] = []  # charts (and parts) not painted yet since the tab was shown
        self._reveal = QTimer(self)
        self._reveal.setInterval(REVEAL_MS)
        self._reveal.timeout.connect(self._reveal_next)

    @property
    def gpu_panel_visible(self) -> bool:
        return self.gpu_stack.currentIndex() == 1

    def chart(self, field: str) -> Chart:
        return self.charts.get(field) or self.gpu_charts[field]

    def _clicked(self, chart: Chart, event) -> None:
        if self.static:  # a rollup range: its minutes are older than the explorer's requests
            return
        x = chart.getPlotItem().vb.mapSceneToView(event.scenePos()).x()
        span = self.second_at(x)
        if span is not None:
            self.second_clicked.emit(*span)

    def second_at(self, x: float) -> tuple[float, float] | None:
        """The history point nearest to `x` (seconds before the newest point) as (start, end]."""
        stamps = self.buffer.view("timestamp")
        if not len(stamps):
            return None
        i = int(np.argmin(np.abs((stamps - self.buffer.last_timestamp) - x)))
        end = float(stamps[i])
        return (float(stamps[i - 1]) if i > 0 else end - 1.0), end

    def _show_gpu(self, gpu: bool) -> None:
        """The GPU charts get a row like the others; without a GPU the row is a one-line note."""
        self.gpu_stack.setCurrentIndex(1 if gpu else 0)
        self.gpu_stack.setMaximumHeight(16_777_215 if gpu else 56)
        self._grid.setRowStretch(self._gpu_row, 1 if gpu else 0)

    def set_targets(self, targets: dict[str, float]) -> None:
        """{series field: target ms}; 0 or missing = none."""
        for field, target in targets.items():
            if target:
                next(c for c in self._all if field in c.curves).set_target(field, target)

    def visible_charts(self) -> list[Chart]:
        return self._all if self.gpu_panel_visible else list(self.charts.values())

    def show_range(self, points, span_s: float, gpu_available: bool) -> None:
        """A fixed range (per-minute rollups): x in minutes or hours before now; the live history
        comes back with `update_from` after `live()`."""
        import time
        self.static = True
        if self.gpu_panel_visible != gpu_available:
            self._show_gpu(gpu_available)
        unit, label = (60.0, "minutes ago") if span_s <= 3600 else (3600.0, "hours ago")
        now = time.time()
        x = np.array([(p.timestamp - now) / unit for p in points], dtype=float)
        for chart in self._all:
            chart.setLabel("bottom", label)
            chart.x_span = -1  # the live view sets its range afresh
            chart.setXRange(-span_s / unit, 0, padding=0)
            peak = 0.0
            for field, curve in chart.curves.items():
                y = np.array([_derived(p, field) for p in points], dtype=float)
                curve.setData(x, y)
                if field in chart.targets:
                    chart.mark_breaches(field, x, y)
                if not chart.fixed_y and np.isfinite(y).any():
                    peak = max(peak, float(np.nanmax(y)))
            chart.fit_y(peak)

    def live(self) -> None:
        """Back to the 1 Hz history: the next update_from redraws every curve from the buffer."""
        self.static = False
        for chart in self._all:
            chart.setLabel("bottom", "seconds ago")
        self._redraw = True

    def update_from(self, points, gpu_available: bool, *, stagger: bool = False) -> None:
        """One snapshot of the history (SeriesPoints, oldest first) -> every curve, in place.

        `stagger`: draw one chart per STAGGER_MS instead of all at once. A refresh of every chart
        makes one paint (and one pass of the scene's dirty items) of all of them, 30-40 ms under
        load; one chart at a time is a tenth of that, and all are drawn well within the second."""
        if self.static:
            return
        if self.gpu_panel_visible != gpu_available:
            self._show_gpu(gpu_available)
        if self.buffer.sync(points) or self._redraw:
            self._pending = list(self._all if gpu_available else self.charts.values())
        self._redraw = False
        if stagger:
            if self._pending and not self._stagger.isActive():
                self._stagger.start()
            return
        pending, self._pending = self._pending, []  # a direct call draws whatever is still due
        for chart in pending:
            self._draw(chart)

    def reveal(self, extra: list[QWidget] = ()) -> None:
        """The tab is being shown: paint the charts one per REVEAL_MS rather than all in the
        switch's one paint (60-110 ms under load: Qt drops the charts' item caches while the tab
        is hidden, so every axis and label is drawn afresh). Until its turn, a chart is hidden
        with its place kept, so the page shows its plain background there; disabling its updates
        instead left the view unpainted (black, or the chat's old pixels) for up to 100 ms."""
        self._hidden = [*self.visible_charts(), self.gpu_stack, *extra]
        for chart in self._hidden:
            _set_blank(chart, True)
        self._reveal.start()

    def _reveal_next(self) -> None:
        if not self._hidden:
            self._reveal.stop()
            return
        chart = self._hidden.pop(0)
        if chart in self._pending:  # its new data and its first paint in the same turn
            self._pending.remove(chart)
            self._draw(chart)
        _set_blank(chart, False)

    def finish_reveal(self) -> None:
        self._reveal.stop()
        for chart in self._hidden:
            _set_blank(chart, False)
        self._hidden = []

    def _draw_next(self) -> None:
        if not self._pending:
            self._stagger.stop()
            return
        self._draw(self._pending.pop(0))

    def _draw(self, chart: Chart) -> None:
        x = self.buffer.view("timestamp") - self.buffer.last_timestamp
        span = -float(x[0]) if len(x) else 0.0
        chart.fit_x(span)
        peak = -math.inf
        for field, curve in chart.curves.items():
            y = self.buffer.view(field)
            curve.setData(x, y)
            if field in chart.targets:
                chart.mark_breaches(field, x, y)
            if not chart.fixed_y and np.isfinite(y).any():
                peak = max(peak, float(np.nanmax(y)))
        chart.fit_y(peak if peak > -math.inf else 0.0)
