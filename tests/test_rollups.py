"""Per-minute rollups in SQLite: folded from the records and the 1 Hz points, bounded to the
retention (old rows deleted as new ones are written), and still there after a runtime restart."""

from __future__ import annotations

import asyncio

import pytest

from jarvis.runtime import Runtime
from jarvis.telemetry.records import RequestRecord
from jarvis.telemetry.rollups import WEEK_S, RollupStore
from jarvis.telemetry.series import SeriesPoint

from bench.support.chat import greedy
from tests.ui_support import drive, make_desktop, points, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

T0 = 1_700_000_040.0  # a minute's start


def point(t: float, cpu: float = 10.0, ui: float | None = None) -> SeriesPoint:
    return SeriesPoint(timestamp=t, latency_p50_ms=None, latency_p95_ms=None, latency_p99_ms=None, ttft_p50_ms=None,
                       ttft_p95_ms=None, tokens_per_s=0.0, requests_per_s=0.0, cache_hit_rate=None, queue_depth=2,
                       active_slots=1, cpu_percent=cpu, ram_percent=50.0, process_rss_bytes=1, gpu_util_pct=None,
                       gpu_mem_used_bytes=None, gpu_mem_total_bytes=None, loaded_models=1, ui_stall_max_ms=ui)


def test_a_minute_is_written_when_it_ends_with_its_figures(tmp_path):
    now = [T0]
    store = RollupStore(tmp_path / "t.sqlite3", clock=lambda: now[0])
    for i, total in enumerate([100.0, 200.0, 300.0]):
        store.observe(RequestRecord(request_id=f"r{i}", model="m", total_ms=total, ttft_ms=total / 2,
                                    prompt_tokens=10, completion_tokens=5, cache="miss"))
    store.observe(RequestRecord(request_id="e", model="m", status="error", total_ms=1.0))
    for s in range(60):
        store.on_point(point(T0 + s, cpu=10.0 if s % 2 else 30.0, ui=5.0 if s != 7 else 40.0))
    assert store.count() == 0  # the minute is not over yet
    now[0] = T0 + 60
    store.on_point(point(T0 + 60))
    rows = store.rows()
    assert len(rows) == 1
    row = rows[0]
    assert row["minute"] == T0 and row["requests"] == 4 and row["errors"] == 1
    # approx: percentiles interpolate and the CPU figure is a mean, all computed in float
    assert row["latency_p50_ms"] == pytest.approx(150.0) and row["ttft_p95_ms"] == pytest.approx(145.0)  # TTFT: the three ok ones
    assert row["prompt_tokens"] == 30 and row["completion_tokens"] == 15 and row["cache_misses"] == 3
    assert row["cpu_percent"] == pytest.approx(20.0) and row["ui_stall_max_ms"] == 40.0 and row["queue_depth_max"] == 2
    store.close()


def test_rows_older_than_the_retention_are_deleted(tmp_path):
    now = [T0]
    store = RollupStore(tmp_path / "t.sqlite3", clock=lambda: now[0])
    for days in (8, 6, 1):  # a minute 8 days old, 6 days old, yesterday
        store.write({"minute": T0 - days * 86400, "requests": days})
    now[0] = T0 + 60
    store.write({"minute": T0, "requests": 0})  # each write prunes what the week left behind
    assert [r["requests"] for r in store.rows()] == [6, 1, 0]
    assert store.pruned == 1 and store.retention_s == WEEK_S
    store.close()


def test_rollups_survive_a_runtime_restart(settings):
    async def first():
        runtime = Runtime(settings)
        await runtime.start(http=False, warmup=False)
        reply = await runtime.assistant.chat(greedy(runtime.assistant, "Name a fruit."))
        await asyncio.to_thread(runtime.hub.tick)
        await runtime.close()  # writes the minute in progress
        return reply

    reply = asyncio.run(first())
    assert settings.rollups_path.exists()

    async def second():
        runtime = Runtime(settings)
        try:
            return await asyncio.to_thread(runtime.hub.rollups.rows)
        finally:
            await runtime.close()

    rows = asyncio.run(second())
    assert sum(r["requests"] for r in rows) == 1
    assert sum(r["completion_tokens"] for r in rows) == reply.record.completion_tokens


def test_no_rollups_when_turned_off(settings):
    off = settings.model_copy(update={"telemetry": settings.telemetry.model_copy(update={"rollup_days": 0})})
    runtime = Runtime(off)
    assert runtime.hub.rollups is None
    asyncio.run(runtime.close())
    assert not off.rollups_path.exists()


def test_the_monitor_range_selector_charts_the_rollups(make_desktop, drive):
    import time

    d = make_desktop()
    d.window.tabs.setCurrentWidget(d.monitor)
    store = d.runtime.hub.rollups
    now = time.time()
    minute = int(now // 60 * 60)
    for k in range(1, 31):  # the last half hour, 6 requests a minute; and one row two days ago
        store.write({"minute": minute - k * 60, "requests": 6, "completion_tokens": 120, "cpu_percent": 25.0})
    store.write({"minute": minute - 2 * 86400, "requests": 60})
    d.monitor.range_bar.select(3600)
    chart = d.monitor.charts.chart("requests_per_s")
    # The app writes its own row when a minute ends (no requests: 0/s). A slow run crosses a
    # minute boundary, so one such row may join the seeded ones; it never changes them.
    drive.wait(lambda: points(chart.curves["requests_per_s"]) in (30, 31))
    x, y = chart.curves["requests_per_s"].getData()
    seeded = sorted(y)[-30:]
    assert seeded == pytest.approx([0.1] * 30) and x.min() > -60  # 6 requests a minute, computed per second
    assert sorted(y)[:-30] == pytest.approx([0.0] * (len(y) - 30))  # the app's own minute, if one ended
    assert len(d.monitor.export_rows()) in (30, 31)
    d.monitor.range_bar.select(7 * 86400)
    drive.wait(lambda: points(chart.curves["requests_per_s"]) in (31, 32))
    assert chart.getAxis("bottom").labelText == "hours ago"
    d.monitor.range_bar.select(0)  # back to the live second-by-second history
    drive.run(asyncio.to_thread(d.runtime.hub.tick))
    d.monitor.refresh()
    assert points(chart.curves["requests_per_s"]) == len(d.runtime.hub.series.points())
    assert chart.getAxis("bottom").labelText == "seconds ago"


def test_an_unwritable_data_dir_turns_rollups_off_with_a_warning(settings, tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    bad = settings.model_copy(update={"general": settings.general.model_copy(update={"data_dir": str(blocker / "d")})})
    runtime = Runtime(bad)  # the file is opened on a thread: the constructor (on the loop) does not wait
    assert runtime.hub.rollups.opened.result(timeout=30) is False
    assert str(blocker) in runtime.hub.rollups.error
    assert any("telemetry history is off" in r.getMessage() for r in caplog.records)
    assert runtime.hub.rollups.rows() == [] and runtime.hub.rollups.count() == 0  # off, not broken
    asyncio.run(runtime.close())


def test_a_restart_within_the_minute_merges_its_row(tmp_path):
    now = [T0 + 30]
    first = RollupStore(tmp_path / "t.sqlite3", clock=lambda: now[0])
    first.write({"minute": T0, "requests": 3, "latency_p95_ms": 900.0, "cpu_percent": 20.0})
    first.close()
    second = RollupStore(tmp_path / "t.sqlite3", clock=lambda: now[0])
    second.write({"minute": T0, "requests": 2, "latency_p95_ms": 400.0, "cpu_percent": 40.0})
    [row] = second.rows()
    # The worst P95 is kept as it was; the CPU figures are averaged (approx: a computed mean).
    assert row["requests"] == 5 and row["latency_p95_ms"] == 900.0 and row["cpu_percent"] == pytest.approx(30.0)
    second.close()
