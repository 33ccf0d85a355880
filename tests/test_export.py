"""Export: GET /api/performance/history?format=csv parses back to the JSON history, number for
number; the monitor writes the same CSV and one PNG per chart."""

from __future__ import annotations

import asyncio
import csv
import io

from tests.test_http_stats import feed_requests, run, serve
from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from jarvis.telemetry.export import to_csv


def _parse(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _same(cell: str, value) -> bool:
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == str(value)
    if isinstance(value, (int, float)):
        return float(cell) == value
    return cell == str(value)


def test_history_csv_matches_the_json_history():
    async def main():
        async with serve() as (session, bus, hub):
            for _ in range(3):
                feed_requests(bus)
                await asyncio.to_thread(hub.tick)
            async with session.get("/api/performance/history") as resp:
                points = (await resp.json())["points"]
            async with session.get("/api/performance/history", params={"format": "csv"}) as resp:
                assert resp.status == 200 and resp.content_type == "text/csv"
                text = await resp.text()
            async with session.get("/api/performance/history", params={"format": "xml"}) as resp:
                assert resp.status == 400
            return points, text

    points, text = run(main())
    rows = _parse(text)
    assert len(rows) == len(points) == 3
    assert list(rows[0]) == list(points[0])  # every field, in order
    for row, point in zip(rows, points):
        assert all(_same(row[k], v) for k, v in point.items()), (row, point)
    assert to_csv([]) == ""


def test_the_monitor_exports_csv_and_a_png_per_chart(make_desktop, drive, tmp_path):
    d = make_desktop()
    d.window.tabs.setCurrentWidget(d.monitor)
    for _ in range(2):
        drive.run(asyncio.to_thread(d.runtime.hub.tick))
    d.monitor.refresh()
    path = d.monitor.export_csv(tmp_path / "history.csv")
    rows = _parse(path.read_text())
    assert len(rows) == len(d.runtime.hub.series.points()) >= 2
    assert float(rows[-1]["timestamp"]) == d.runtime.hub.latest().timestamp
    written = d.monitor.export_pngs(tmp_path / "charts")
    assert len(written) == len(d.monitor.charts.charts)  # no GPU here: the GPU charts are not shown
    from PySide6.QtGui import QImage
    for png in written:
        image = QImage(str(png))
        assert not image.isNull() and image.width() > 100 and image.height() > 50
