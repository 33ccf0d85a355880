"""Targets on the charts: the settings' latency/TTFT targets are drawn as lines, and exactly the
seconds whose figure is above the target are marked."""

from __future__ import annotations

import asyncio

import numpy as np
import pyqtgraph as pg
from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from jarvis.config import load_settings
from jarvis.telemetry.records import RequestRecord


def test_targets_are_drawn_and_breaking_seconds_marked(make_desktop, drive, ui_env):
    settings = load_settings(environ={**ui_env, "JARVIS_TELEMETRY_TARGET_LATENCY_P95_MS": "500",
                                      "JARVIS_TELEMETRY_TARGET_LATENCY_P99_MS": "1000"})
    d = make_desktop(settings)
    d.window.tabs.setCurrentWidget(d.monitor)
    hub = d.runtime.hub
    latency = d.monitor.charts.chart("latency_p50_ms")
    lines = [i.value() for i in latency.getPlotItem().items if isinstance(i, pg.InfiniteLine)]
    assert sorted(lines) == [500, 1000]
    assert "ttft_p95_ms" not in d.monitor.charts.chart("ttft_p50_ms").targets  # 0 = no target
    for i in range(10):  # fast requests: under both targets
        hub.perf.observe(RequestRecord(request_id=f"a{i}", model="m", total_ms=100.0))
    drive.run(asyncio.to_thread(hub.tick))
    for i in range(10):  # then slow ones: the window's P95 goes to 2 s, above both
        hub.perf.observe(RequestRecord(request_id=f"b{i}", model="m", total_ms=2000.0))
    drive.run(asyncio.to_thread(hub.tick))
    d.monitor.refresh()
    x, p95 = latency.curves["latency_p95_ms"].getData()
    marked_x, marked_y = latency.targets["latency_p95_ms"][1].getData()
    assert len(marked_x) == int(np.sum(p95 > 500)) >= 1 and all(marked_y > 500)
    assert p95[-1] > 500 and marked_x[-1] == x[-1]
