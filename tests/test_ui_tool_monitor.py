"""The System Monitor's Tools page and the request explorer after real tool calls in the desktop
(the bundled model, the SDK-written MCP test server over stdio, pytest-qt)."""

from __future__ import annotations


from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from PySide6.QtWidgets import QApplication

from jarvis.config import load_settings
from tests.support.mcp_servers import stdio_settings_toml
from ui.monitor.tool_servers import COLUMNS


def _settings(tmp_path, ui_env):
    path = tmp_path / "tools.toml"
    path.write_text(stdio_settings_toml(extra='approval = "always"'))
    return load_settings(path, environ={**ui_env, "JARVIS_GENERATION_MAX_TOKENS": "40"})


def _row(table, name: str) -> dict[str, str]:
    t = table.table
    for i in range(t.rowCount()):
        if t.item(i, 0).text() == name:
            return {COLUMNS[j]: t.item(i, j).text() for j in range(t.columnCount())}
    raise AssertionError(f"no row for {name}")


def test_the_monitor_shows_each_servers_calls_errors_latency_and_schema_tokens(make_desktop, drive, tmp_path, ui_env):
    d = make_desktop(_settings(tmp_path, ui_env))
    for choice in ("pid", "fail", "pid"):  # one call per answer (max_rounds 1): 3 calls, 1 error
        d.chat.tool_choice = choice
        answer = drive.run(d.chat.send("Use the tool"))
        drive.wait(answer.task.done)
    page = d.monitor.tool_servers
    d.window.tabs.setCurrentWidget(d.monitor)
    d.monitor.details.setCurrentWidget(page)  # the page paints when it is shown
    row = _row(page, "test")
    assert (row["State"], row["Calls"], row["Errors"], row["Refused"]) == ("ready", "3", "1", "0")
    p50, p95 = (float(row[k].split()[0]) for k in ("P50", "P95"))
    assert 0 < p50 <= p95
    figures = d.runtime.hub.perf.tool_servers()["test"]
    assert int(row["Schema tokens"]) == figures["schema_tokens"] > 0
    tools = d.chat.tool_hub.statuses()[0].tools
    assert row["Tools on"] == f"{len(tools)} of {len(tools)}"
    d.window.resize(1200, 800)
    drive.wait(lambda: page.isVisible() and page.table.isVisible())
    d.monitor.charts.finish_reveal()  # the tab's staggered first paint, done at once
    QApplication.processEvents()  # the resize laid out before the picture
    page.grab().save(str(tmp_path / "mcp_monitor.png"))
    d.monitor.grab().save(str(tmp_path / "mcp_monitor_tab.png"))

    # The explorer: the three answers after a tool round say so, with their tool time.
    d.monitor.details.setCurrentWidget(d.monitor.explorer)
    model = d.monitor.explorer.model
    column = [model.horizontalHeaderItem(j).text() for j in range(model.columnCount())].index("Tools")
    cells = [model.item(i, column).text() for i in range(model.rowCount())]
    assert sum(c.startswith("1 round · ") for c in cells) == 3 and cells.count("—") == 3


def test_always_allow_is_written_to_the_settings_file_and_a_new_session_does_not_ask(make_desktop, drive, tmp_path,
                                                                                      ui_env):
    import tomllib

    path = tmp_path / "tools.toml"
    path.write_text(stdio_settings_toml(header="# my settings, kept as they are"))
    env = {**ui_env, "JARVIS_GENERATION_MAX_TOKENS": "40"}
    first = make_desktop(load_settings(path, environ=env))
    first.chat.tool_choice = "pid"
    answer = drive.run(first.chat.send("Show the process id"))
    drive.wait(lambda: bool(first.chat._cards) and next(iter(first.chat._cards.values())).status == "asking")
    next(iter(first.chat._cards.values())).always_allow.click()
    drive.wait(answer.task.done)
    written = tomllib.loads(path.read_text())
    assert written["mcp"]["servers"]["test"]["tools"]["pid"] == {"approval": "always"}
    assert path.read_text().startswith("# my settings, kept as they are\n")
    drive.run(first.shutdown(), timeout_s=30)

    second = make_desktop(load_settings(path, environ=env))  # a new session reads the file
    second.chat.tool_choice = "pid"
    answer = drive.run(second.chat.send("Show the process id"))
    drive.wait(answer.task.done)
    card = next(iter(second.chat._cards.values()))
    assert card.status == "done" and card._decision is None  # it ran without a question
    assert second.chat.tool_hub.servers["test"].calls == 1
