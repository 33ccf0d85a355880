"""Tools in the desktop, on the real bundled model and the SDK-written test server over stdio:
tool-call cards with Allow once / Always allow / Deny clicked by pytest-qt, and the Tools panel."""

from __future__ import annotations

import json

from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)

from jarvis.config import load_settings
from tests.support.mcp_servers import stdio_settings_toml


def _settings(tmp_path, ui_env):
    path = tmp_path / "tools.toml"
    path.write_text(stdio_settings_toml())
    return load_settings(path, environ={**ui_env, "JARVIS_GENERATION_MAX_TOKENS": "40"})


def _card(d):
    return next(iter(d.chat._cards.values()), None)


def _asking(d) -> bool:
    """A card waits for the user and its buttons are on screen: a widget added to a visible layout
    is shown on the event loop's next turn (QLayout queues it), so under load that comes later."""
    card = _card(d)
    return card is not None and card.status == "asking" and card.deny.isVisible()


def test_cards_ask_deny_then_always_allow_and_the_stats_line_counts_the_round(make_desktop, drive, tmp_path, ui_env):
    d = make_desktop(_settings(tmp_path, ui_env))
    d.chat.tool_choice = "pid"
    answer = drive.run(d.chat.send("Show the process id"))
    drive.wait(lambda: _asking(d))
    card = _card(d)
    assert json.loads(card.arguments.toPlainText()) == {}
    card.deny.click()
    drive.wait(answer.task.done)
    assert card.status == "denied" and not card.deny.isVisible()
    assert "denied" in card.result.toPlainText() and d.chat.tool_hub.servers["test"].calls == 0
    assert "1 tool round" in d.chat.view.messages()[-1].stats.text()

    d.chat._cards.clear()
    answer = drive.run(d.chat.send("Show the process id"))
    drive.wait(lambda: _asking(d))
    _card(d).always_allow.click()
    drive.wait(answer.task.done)
    card = _card(d)
    assert card.status == "done" and card.result.toPlainText().isdigit()
    card.toggle.click()  # unfold the result
    assert card.result.isVisible()
    d.window.resize(1100, 760)
    d.chat.view.grab().save(str(tmp_path / "chat_tool_card.png"))

    d.chat._cards.clear()  # "Always allow" holds: the next call is not asked
    answer = drive.run(d.chat.send("Show the process id"))
    drive.wait(answer.task.done)
    assert _card(d).status == "done" and d.chat.tool_hub.servers["test"].calls == 2

    # Stored with the answers: reopening the conversation shows every call as it ended.
    stored = [m.meta["tools"][0] for m in drive.run(d.store.messages(answer.conversation_id)) if m.meta.get("tools")]
    assert [(c["name"], c["status"]) for c in stored] == [("pid", "denied"), ("pid", "done"), ("pid", "done")]
    drive.run(d.chat.select(answer.conversation_id))
    drive.wait(lambda: len([c for c in d.chat.view.findChildren(type(card)) if c.isVisible()]) == 3)
    assert [c.status for c in d.chat.view.findChildren(type(card)) if c.isVisible()] == ["denied", "done", "done"]


def test_the_tools_panel_shows_state_tools_costs_and_a_switch_takes_a_tool_out(make_desktop, drive, tmp_path, ui_env):
    d = make_desktop(_settings(tmp_path, ui_env))
    controller = d.tools
    drive.run(controller._refresh())
    panel = controller.panel
    assert ("test", "echo") in panel.switches and panel.switches[("test", "echo")].isChecked()
    assert "ready" in panel.findChildren(type(panel.total))[1].text()
    total = int(panel.total.text().split("<b>")[1].split("</b>")[0])
    panel.switches[("test", "big")].setChecked(False)  # the switch refreshes the panel
    drive.wait(lambda: ("test", "big") in panel.switches and not panel.switches[("test", "big")].isChecked())
    drive.run(controller._refresh())
    assert int(panel.total.text().split("<b>")[1].split("</b>")[0]) < total
    assert "big" not in {t.name for t in drive.run(d.chat.tool_hub.list_tools())}
    server = d.chat.tool_hub.servers["test"]
    panel.restart_buttons["test"].click()  # a fresh process, and the panel painted again
    drive.wait(lambda: server.starts == 2 and server.state == "ready")
    d.window.tabs.setCurrentWidget(panel)
    panel.resize(900, 600)
    panel.grab().save(str(tmp_path / "tools_panel.png"))
