"""The System Monitor and the app shell, against the real bundled model on a qasync loop."""

from __future__ import annotations

import asyncio
import math
import socket

from tests.fake_nvml import GIB, FakeNvml
from tests.ui_support import drive, make_desktop, points, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from jarvis.telemetry.gpu import GpuProbe
from ui.monitor.tables import MODEL_COLUMNS


def _show_monitor(d):
    d.window.tabs.setCurrentWidget(d.monitor)


def test_charts_gain_points_after_requests(make_desktop, drive):
    d = make_desktop()
    _show_monitor(d)
    hub = d.runtime.hub
    drive.run(asyncio.to_thread(hub.tick))
    d.monitor.refresh()
    latency = d.monitor.charts.chart("latency_p50_ms")
    before = points(latency.curves["latency_p50_ms"])
    answer = drive.run(d.chat.send("Name a fruit."))
    drive.wait(answer.task.done)
    drive.run(asyncio.to_thread(hub.tick))
    d.monitor.refresh()
    assert points(latency.curves["latency_p50_ms"]) > before
    _, y = latency.curves["latency_p95_ms"].getData()
    assert math.isfinite(y[-1]) and y[-1] > 0
    _, requests = d.monitor.charts.chart("requests_per_s").curves["requests_per_s"].getData()
    assert len(requests) >= 2
    assert d.monitor.models.table.rowCount() == 1
    assert d.monitor.models.table.item(0, 0).text() == d.runtime.assistant.default_model()
    assert d.monitor.totals.labels["requests.total"].text() == "1"
    assert d.monitor.last_refresh_ms > 0


def test_the_monitor_refreshes_itself_once_a_second(make_desktop, drive):
    d = make_desktop()
    _show_monitor(d)
    start = d.monitor.refreshes
    drive.wait(lambda: d.monitor.refreshes >= start + 2)
    drive.wait(lambda: points(d.monitor.charts.chart("cpu_percent").curves["cpu_percent"]) >= 1)


def test_no_gpu_panel_on_this_machine(make_desktop, drive):
    d = make_desktop()
    _show_monitor(d)
    drive.run(asyncio.to_thread(d.runtime.hub.tick))  # sampling (NVML) runs off the loop, as in the app
    d.monitor.refresh()
    assert d.runtime.hub.latest_system().gpu_available is False
    assert not d.monitor.charts.gpu_panel_visible
    assert d.monitor.charts.no_gpu.isVisible() and "No GPU detected" in d.monitor.charts.no_gpu.text()


def test_gpu_memory_is_charted_with_nvml_faked(make_desktop, drive):
    d = make_desktop()
    _show_monitor(d)
    hub = d.runtime.hub
    hub.sampler.gpu = GpuProbe(nvml=FakeNvml())
    drive.run(asyncio.to_thread(hub.tick))
    drive.run(asyncio.to_thread(hub.tick))
    d.monitor.refresh()
    assert d.monitor.charts.gpu_panel_visible and not d.monitor.charts.no_gpu.isVisible()
    memory = d.monitor.charts.chart("gpu_mem_used_gib")
    _, used = memory.curves["gpu_mem_used_gib"].getData()
    _, total = memory.curves["gpu_mem_total_gib"].getData()
    assert used[-1] == 6 * GIB / GIB and total[-1] == 160  # two fake devices: 3 of 80 GiB each
    _, util = d.monitor.charts.chart("gpu_util_pct").curves["gpu_util_pct"].getData()
    assert util[-1] == 21  # mean of 37 % and 5 %


def test_unload_button_and_clear_cache(make_desktop, drive):
    d = make_desktop()
    _show_monitor(d)
    answer = drive.run(d.chat.send("Say yes."))
    drive.wait(answer.task.done)
    again = drive.run(d.chat.send("Say yes."))  # a second conversation turn: not a cache hit, that is fine
    drive.wait(again.task.done)
    d.monitor.refresh()
    layers = d.monitor.models.table.item(0, MODEL_COLUMNS.index("GPU layers")).text()
    assert layers == "0/31"  # as llama.cpp's load log counts them (the suite runs on the CPU: conftest.env)
    d.monitor.models.table.cellWidget(0, len(MODEL_COLUMNS) - 1).click()  # the last column: Unload
    drive.wait(lambda: d.runtime.assistant.manager.loaded() == [], timeout_s=30)
    drive.wait(lambda: d.monitor.models.table.rowCount() == 0 or not d.monitor.models.table.isVisible())
    d.monitor.cache.clear.click()
    assert d.runtime.assistant.cache.stats().size == 0
    assert d.monitor.cache.labels["size"].text().startswith("0 /")


def test_the_loop_keeps_ticking_while_four_answers_stream(make_desktop, drive, ui_env):
    """The window's loop runs between the chunks of four streaming answers: ticks interleave with
    the stream. Proven by counting chunks at each tick, not by a stall limit in milliseconds (how
    long a stall lasts depends on the machine; `python -m bench.ui_bench` measures it)."""
    from jarvis.config import load_settings

    d = make_desktop(load_settings(environ={**ui_env, "JARVIS_GENERATION_MAX_TOKENS": "48"}))
    _show_monitor(d)  # the monitor refreshes meanwhile, as it would on screen
    drive.run(d.runtime.assistant.manager.load(d.runtime.assistant.default_model()))
    chunks_seen_at_ticks: list[int] = []
    lateness: list[float] = []
    answers = []
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t0 = loop.time()
            await asyncio.sleep(0.01)
            lateness.append(loop.time() - t0 - 0.01)
            chunks_seen_at_ticks.append(sum(a.chunks for a in answers))

    ticking = drive.loop.create_task(ticker())
    for i, topic in enumerate(["the sea", "a forest", "the moon", "a city"]):
        drive.run(d.chat.new_conversation())
        answers.append(drive.run(d.chat.send(f"Write a short poem about {topic}.")))
    assert len(d.chat.answers) == 4
    drive.wait(lambda: all(a.task.done() for a in answers))
    stop.set()
    drive.wait(ticking.done)
    total = sum(a.chunks for a in answers)
    print(f"\nmain-thread max stall while 4 answers streamed: {max(lateness) * 1000:.1f} ms over "
          f"{len(lateness)} ticks")
    assert all(a.text.strip() for a in answers)
    assert total > 4  # they streamed (more than one chunk each on average)
    # Ticks ran mid-stream: after some chunks had arrived and before the last one did.
    assert any(0 < seen < total for seen in chunks_seen_at_ticks), (chunks_seen_at_ticks[:20], total)


def test_a_busy_port_is_shown_and_the_app_still_starts(make_desktop, ui_env):
    from jarvis.config import load_settings

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d = make_desktop(load_settings(environ={**ui_env, "JARVIS_SERVER_PORT": str(port)}), http=True)
        d.window.update_state()
        assert d.runtime.server is None and "port busy" in d.window.server.text()
        assert str(port) in d.window.server.toolTip()
        assert d.window.isVisible()


def test_the_endpoint_address_is_in_the_status_bar(make_desktop):
    d = make_desktop(http=True)
    d.window.update_state()
    assert d.window.server.text() == f"API {d.runtime.server.url}"


def test_an_unopenable_database_falls_back_to_memory_with_a_warning(make_desktop, drive, ui_env, tmp_path):
    from jarvis.config import load_settings

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    d = make_desktop(load_settings(environ={**ui_env, "JARVIS_CONVERSATIONS_DATABASE": str(blocker / "c.db")}))
    assert d.chat.sidebar.warning.isVisible() and "memory" in d.chat.sidebar.warning.text()
    assert drive.run(d.chat.new_conversation()) > 0


def test_a_long_range_is_drawn_as_bucket_peaks_that_keep_spikes_and_gaps():
    import numpy as np

    from ui.monitor.charts import peaks

    x = np.arange(7 * 24 * 60, dtype=float)  # 7 days of minutes
    y = np.ones_like(x)
    y[5000] = 90.0  # one bad minute
    y[100:400] = np.nan  # the app was closed for five hours
    xs, ys = peaks(x, y, 500)
    assert len(xs) == 1000 and np.all(np.diff(xs) >= 0)  # a pair per bucket, in time order
    assert np.nanmax(ys) == 90.0 and np.nanmin(ys) == 1.0  # the spike is still drawn
    assert np.isnan(ys).any()  # and the gap is still a gap
    short = np.arange(30.0)
    assert peaks(short, short, 500)[1] is short  # a short range is drawn as it is


def test_the_models_table_counts_saved_prompts_in_each_models_memory(qtbot):
    """The cell reads the summary manager.loaded() gives (tests/test_prompt_cache.py proves its figures)."""
    from ui.monitor.tables import MEMORY_COLUMN, ModelsTable

    table = ModelsTable()
    qtbot.addWidget(table)
    row = {"name": "m", "slots": 4, "memory_bytes": 92 * 2**20,
           "prompt_cache": {"entries": 8, "bytes": 23 * 2**20, "limit_bytes": 2**31, "saves": 8, "restores": 21,
                            "restored_tokens": 758, "evictions": 0}}
    off = {**row, "name": "n", "prompt_cache": {**row["prompt_cache"], "limit_bytes": 0, "bytes": 0, "restores": 0}}
    table.update_from([row, off])
    cell = table.table.item(0, MEMORY_COLUMN)
    assert cell.text() == "92 MiB + 23 MiB"
    assert "21 requests started from one (758 prompt tokens" in cell.toolTip()
    assert table.table.item(1, MEMORY_COLUMN).text() == "92 MiB"
    assert "off" in table.table.item(1, MEMORY_COLUMN).toolTip()
