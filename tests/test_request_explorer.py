"""The request explorer and GET /api/requests/recent: rows match the requests made (chat and API,
one failed), the filter and sort work, and a click on a chart point selects that second's requests."""

from __future__ import annotations

import aiohttp
from PySide6.QtCore import QPointF, Qt

from jarvis.telemetry.recent import RecentRequests
from jarvis.telemetry.records import RequestRecord, StepRecord
from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)
from ui.monitor.explorer import REQUEST_ID_ROLE


def test_recent_requests_is_bounded_newest_first_and_keeps_prompts_out():
    recent = RecentRequests(capacity=3)
    for i in range(5):
        recent.observe(RequestRecord(request_id=f"r{i}", model="m", timestamp=100.0 + i, prompt="secret"))
    recent.observe(StepRecord("m", 1, 0, 1, 1, 0, 1.0))  # not a request: ignored
    assert [r["request_id"] for r in recent.rows()] == ["r4", "r3", "r2"]
    assert "prompt" not in recent.rows()[0]
    recent.log_prompts = True
    assert recent.rows(1)[0]["prompt"] == "secret"


def test_explorer_rows_match_the_requests_and_a_chart_click_selects_them(make_desktop, drive, qtbot):
    d = make_desktop(http=True)
    monitor, hub = d.monitor, d.runtime.hub
    d.window.tabs.setCurrentWidget(monitor)
    model = d.runtime.assistant.default_model()
    answers = []
    for prompt in ("Name a fruit.", "Name a colour."):
        d.chat.new_conversation()
        answers.append(d.chat.send(prompt))
    drive.wait(lambda: all(a.task.done() for a in answers))

    async def api():
        async with aiohttp.ClientSession(d.runtime.server.url) as session:
            ok = {"model": model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8,
                  "temperature": 0}
            async with session.post("/v1/chat/completions", json=ok) as resp:
                assert resp.status == 200
            bad = {**ok, "model": "no-such-model"}
            async with session.post("/v1/chat/completions", json=bad) as resp:
                assert resp.status == 404
            async with session.get("/api/requests/recent", params={"limit": "10"}) as resp:
                assert resp.status == 200
                served = await resp.json()
            async with session.get("/api/requests/recent", params={"limit": "0"}) as resp:
                assert resp.status == 400
            return served

    served = drive.run(api())
    records = hub.recent.records()
    assert len(records) == 4
    assert [r["request_id"] for r in served["requests"]] == [r.request_id for r in records]
    assert served["log_prompts"] is False and all("prompt" not in r for r in served["requests"])
    assert sorted(r.source for r in records) == ["api", "api", "chat", "chat"]
    assert sorted(r.status for r in records) == ["error", "ok", "ok", "ok"]
    failed = next(r for r in served["requests"] if r["status"] == "error")
    assert failed["model"] == "no-such-model" and failed["error_kind"] == "ModelNotFound"

    monitor.details.setCurrentWidget(monitor.explorer)
    explorer = monitor.explorer
    assert explorer.proxy.rowCount() == 4
    shown = {explorer.proxy.index(row, 0).data(Qt.UserRole + 3) for row in range(4)}
    assert shown == {r.request_id for r in records}
    explorer.status.setCurrentText("error")
    assert explorer.proxy.rowCount() == 1 and "ModelNotFound" in explorer.proxy.index(0, len_columns() - 1).data()
    explorer.status.setCurrentText("all")
    explorer.filter.setText("chat")  # a text filter over every column: the desktop's two
    assert explorer.proxy.rowCount() == 2
    explorer.filter.setText("")
    explorer.table.sortByColumn(9, Qt.AscendingOrder)  # Total, numerically
    totals = [explorer.proxy.index(row, 9).data(Qt.UserRole + 1) for row in range(4)]
    assert totals == sorted(totals)

    # A tick after the requests, then a real click on the point of the second the last ones finished in.
    newest = records[0].timestamp
    drive.wait(lambda: hub.latest() is not None and hub.latest().timestamp >= newest, timeout_s=30)
    monitor.refresh()
    chart = monitor.charts.chart("requests_per_s")
    stamps = monitor.charts.buffer.view("timestamp")
    i = next(k for k, t in enumerate(stamps) if t >= newest)
    start = float(stamps[i - 1]) if i > 0 else float(stamps[i]) - 1.0
    # What the point at stamps[i] counted: the requests that finished in (the point before, it].
    expected = {r.request_id for r in hub.recent.records() if start < r.timestamp <= float(stamps[i])}
    assert expected  # at least the newest request finished in that second
    x = float(stamps[i] - monitor.charts.buffer.last_timestamp)
    scene = chart.getPlotItem().vb.mapViewToScene(QPointF(x, 0.1 * chart.y_max))
    monitor.details.setCurrentIndex(0)
    qtbot.mouseClick(chart.viewport(), Qt.LeftButton, pos=chart.mapFromScene(scene))
    assert monitor.details.currentWidget() is explorer
    selected = explorer.table.selectionModel().selectedRows(0)
    assert {explorer.proxy.data(index, REQUEST_ID_ROLE) for index in selected} == expected


def len_columns() -> int:
    from ui.monitor.explorer import COLUMNS
    return len(COLUMNS)
