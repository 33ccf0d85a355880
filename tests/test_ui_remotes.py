"""The desktop with a remote: the System Monitor's "Remote engines" section charts what a
vLLM-shaped server reports at /metrics, and the model picker groups this computer / each remote."""

from __future__ import annotations

from tests.ui_support import drive, make_desktop, points, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from tests.support.remote_servers import VllmMetricsServer, with_remote


def test_remote_engines_section_and_grouped_picker(make_desktop, drive, ui_settings):
    with VllmMetricsServer() as vllm:
        d = make_desktop(with_remote(ui_settings, "gpu", vllm.base_url, health_interval_s=3600))
        replica = d.runtime.assistant.backends.get("gpu").backend.replicas[0]
        # the 1 Hz scrape and the first probe (which publishes the models) run side by side: wait for both
        drive.wait(lambda: replica.metrics is not None
                   and any(m["name"] == "gpu/big-70b" for m in d.runtime.assistant.models()), timeout_s=20)
        d.window.tabs.setCurrentWidget(d.monitor)
        d.monitor.refresh()
        panel = d.monitor.remotes
        d.monitor.details.setCurrentWidget(panel)  # its own page below the charts
        assert d.monitor.details.currentWidget() is panel and panel.isVisibleTo(d.window)
        row = [panel.table.item(0, j).text() for j in range(panel.table.columnCount())]
        assert row[:3] == ["gpu", vllm.base_url, "up"] and row[6:11] == ["—", "—", "3", "5", "42 %"]
        d.monitor.refresh()
        for field in ("waiting", "running", "kv_cache_usage"):
            assert points(panel.curves[(field, "gpu")]) >= 2  # one per refresh (the 1 Hz timer adds its own)

        combo = d.chat.settings_panel.model
        d.chat.settings_panel.set_models(d.runtime.assistant.models(), d.runtime.assistant.default_model())
        texts = [combo.itemText(i) for i in range(combo.count())]
        assert "This computer" in texts and "Remote gpu" in texts
        assert texts.index("Remote gpu") < texts.index("gpu/big-70b — remote")
        heading = combo.model().item(texts.index("Remote gpu"))
        assert not heading.isEnabled()


def test_no_remote_no_section(make_desktop):
    d = make_desktop()
    assert not d.monitor.remotes.isVisibleTo(d.window)
    d.monitor.refresh()  # nothing to paint, nothing breaks
