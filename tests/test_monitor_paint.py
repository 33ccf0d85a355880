"""How the monitor spreads its painting (the work behind "under one frame"): the 1 Hz refresh
draws one chart per turn instead of all at once, and a tab switch reveals the charts one by one;
the first switch finds the tab laid out already. Counted, not timed."""

from __future__ import annotations

import asyncio

from tests.ui_support import drive, make_desktop, points, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)


def test_the_hidden_monitor_is_laid_out_before_the_first_switch(make_desktop):
    d = make_desktop()
    assert not d.monitor.isVisible()
    chart = d.monitor.charts.chart("latency_p50_ms")
    assert chart.width() > chart.minimumWidth() and chart.height() > chart.minimumHeight()


def test_a_switch_reveals_the_charts_one_by_one(make_desktop, drive):
    d = make_desktop()
    charts = d.monitor.charts
    d.window.tabs.setCurrentWidget(d.monitor)
    blank = [c for c in charts.visible_charts() if c.isHidden()]
    assert len(blank) == len(charts.visible_charts())  # none painted in the switch itself
    places = [c.geometry() for c in blank]
    seen = []
    drive.wait(lambda: seen.append(sum(c.isHidden() for c in charts.visible_charts())) or not seen[-1])
    assert all(c.isVisible() for c in charts.visible_charts())
    assert [c.geometry() for c in blank] == places  # a blank chart kept its place: nothing moved
    assert len(set(seen)) > 2  # several turns, not one


def test_the_timer_refresh_draws_one_chart_at_a_time(make_desktop, drive):
    d = make_desktop()
    d.window.tabs.setCurrentWidget(d.monitor)
    charts = d.monitor.charts
    drive.wait(lambda: not any(c.isHidden() for c in charts.visible_charts()))  # the switch's reveal is over
    drive.run(asyncio.to_thread(d.runtime.hub.tick))
    d.monitor.refresh(stagger=True)
    n = len(charts.visible_charts())

    def drawn() -> int:  # charts that show the refresh's snapshot (it has one point more than before)
        return sum(points(next(iter(c.curves.values()))) == len(charts.buffer) for c in charts.visible_charts())

    assert drawn() == 0  # none drawn in the refresh call itself
    counts = []
    drive.wait(lambda: counts.append(drawn()) or counts[-1] == n)
    assert len(set(counts)) >= n // 2  # drawn over many turns
    # Every chart drawn from the same snapshot (the hub keeps ticking on its thread meanwhile).
    assert all(points(next(iter(c.curves.values()))) == len(charts.buffer) for c in charts.visible_charts())
