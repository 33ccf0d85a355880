"""Heartbeat stalls: the meter's arithmetic, the fold into the 1 Hz history, /metrics, the stats
JSON, and the desktop's own Qt heartbeat catching a deliberate block of the UI thread."""

from __future__ import annotations

import time

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from jarvis.http.metrics import PrometheusMetrics
from jarvis.telemetry import StallRecord
from jarvis.telemetry.responsiveness import HeartbeatMeter, Responsiveness
from tests.support.until import until_async
from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_meter_reads_a_late_beat_as_a_stall_and_flushes_records():
    clock, records = Clock(), []
    meter = HeartbeatMeter("ui", 8, records.append, flush_s=0.25, clock=clock)
    for t in (0.0, 0.008, 0.016, 0.124, 0.132):  # the beat due at 0.024 ran at 0.124: 100 ms late
        clock.t = t
        meter.beat()
    assert records == []  # not a quarter second yet
    clock.t = 0.26
    meter.beat()
    assert len(records) == 1 and records[0].source == "ui"
    assert np.allclose(records[0].stalls_ms, [0, 0, 100, 0, 120])  # the last gap: 128 ms for an 8 ms beat
    assert meter.max_ms == records[0].stalls_ms[-1]
    meter.pause()  # a stopped timer: the next beat is a fresh start, not a stall
    clock.t = 10.0
    assert meter.beat() == 0.0


def test_responsiveness_folds_seconds_and_summarises():
    r = Responsiveness(window_s=60)
    r.observe(StallRecord("ui", 8, tuple([1.0] * 99 + [100.0])))
    r.observe(StallRecord("loop", 8, (2.0, 3.0)))
    second = r.take_second(now=1000.0)
    assert second["ui"][0] == 100.0 and 1.0 < second["ui"][1] < 100.0
    assert second["loop"] == (3.0, percentile_of([2.0, 3.0]))
    assert r.take_second(now=1001.0) == {"ui": None, "loop": None}  # nothing new: no heartbeat ran
    summary = r.summary()
    assert summary["ui"]["beats"] == 100 and summary["ui"]["stalls_over_frame"] == 1
    assert summary["ui"]["window_max_ms"] == 100.0 and summary["loop"]["lifetime_max_ms"] == 3.0


def percentile_of(values):
    from jarvis.telemetry.window import percentile
    return percentile(sorted(values), 99)


def test_stalls_are_a_prometheus_histogram_per_thread():
    metrics = PrometheusMetrics()
    metrics.observe(StallRecord("ui", 8, (0.5, 3.0, 20.0, 120.0)))
    metrics.observe(StallRecord("loop", 8, (1.0,)))
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    samples = families["jarvis_heartbeat_stall_seconds"].samples

    def value(name, **labels):
        return next(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("jarvis_heartbeat_stall_seconds_count", thread="ui") == 4
    assert value("jarvis_heartbeat_stall_seconds_bucket", thread="ui", le="0.016") == 2
    assert value("jarvis_heartbeat_stall_seconds_bucket", thread="ui", le="0.1") == 3
    assert value("jarvis_heartbeat_stall_seconds_count", thread="loop") == 1


def test_a_blocked_ui_thread_shows_as_a_stall_in_the_monitor(make_desktop, drive):
    d = make_desktop()
    d.window.tabs.setCurrentWidget(d.monitor)
    assert d.heartbeat.running
    hub = d.runtime.hub
    drive.wait(lambda: d.heartbeat.meter.beats >= 5, timeout_s=30)
    from PySide6.QtCore import QTimer
    QTimer.singleShot(0, lambda: time.sleep(0.1))  # a deliberate 100 ms block of the Qt thread
    drive.wait(lambda: d.heartbeat.meter.max_ms >= 90, timeout_s=30)
    # The hub's own 1 Hz tick (on its thread) folds the stall into that second's point.
    drive.wait(lambda: any((p.ui_stall_max_ms or 0) >= 90 for p in hub.series.points()), timeout_s=30)
    d.monitor.refresh()
    _, y = d.monitor.charts.chart("ui_stall_max_ms").curves["ui_stall_max_ms"].getData()
    assert np.nanmax(y) >= 90
    stats = d.runtime.stats.performance_stats()["responsiveness"]
    assert stats["ui"]["lifetime_max_ms"] >= 90 and stats["ui"]["stalls_over_frame"] >= 1
    assert stats["loop"]["beats"] > 0  # the asyncio loop's heartbeat runs too (here the same thread)


def test_the_loop_heartbeat_reaches_the_stats_json_of_a_server(settings):
    from bench.support.server import ServerThread

    with ServerThread(settings, preload=False) as server:
        async def beats():
            def loop_stats():
                return server.runtime.stats.performance_stats()["responsiveness"].get("loop")
            await until_async(lambda: (loop_stats() or {}).get("beats", 0) > 0)  # a loop heartbeat reached the stats
            return loop_stats()

        loop = server.call(beats())
        assert loop["interval_ms"] == 8 and "ui" not in server.runtime.stats.performance_stats()["responsiveness"]


def test_a_headless_server_beats_its_loop_only_while_someone_reads_the_stats(settings):
    """`jarvis serve` (heartbeat_when_watched): nobody reads the figures, so the loop is not woken
    every 8 ms for them; the first stats read starts the heartbeat. No timing: the hub's own 1 Hz
    ticks (three of them, 375 heartbeat intervals) are what the test waits on."""
    import asyncio

    import aiohttp

    from jarvis.http.openai_routes import openai_routes
    from jarvis.runtime import Runtime

    async def body():
        runtime = Runtime(settings, registrars=[openai_routes])
        await runtime.start(http=True, warmup=False, host="127.0.0.1", port=0, heartbeat_when_watched=True)
        try:
            hub = runtime.hub
            await until_async(lambda: len(hub.history()) >= 3)
            unwatched = "loop" in hub.responsiveness.summary()
            async with aiohttp.ClientSession() as session:
                async with session.get(runtime.server.url + "/api/performance/stats") as resp:
                    assert resp.status == 200
            await until_async(lambda: hub.responsiveness.summary().get("loop", {}).get("beats", 0) > 0)
            return unwatched
        finally:
            await runtime.close()

    assert asyncio.run(body()) is False


def test_the_watch_lapses_after_its_idle_time():
    from jarvis.telemetry.responsiveness import Watch

    clock = Clock()
    watch = Watch(idle_s=120, clock=clock)
    assert not watch.watched  # nobody ever read
    watch.seen()
    clock.t = 120.0
    assert watch.watched
    clock.t = 120.5
    assert not watch.watched
