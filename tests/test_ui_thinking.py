"""The desktop shows a reasoning model's thinking as a collapsed "Thinking" section above the answer,
streamed into while the model thinks, counted in the stats line, and kept with the message.

The bundled model never thinks on its own: the desktop's requests get a grammar that makes it
open `<think>`, think in free text, and answer "Hello there!", with a thinking budget of 5 tokens
(jarvis.engine.thinking ends the block), so the count on the stats line is known exactly.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt

from jarvis.config import load_settings
from jarvis.request_options import Grammar, RequestOptions
from tests.ui_support import drive, make_desktop, qloop, ui_env, ui_settings  # noqa: F401 (fixtures)
from ui.chat.message_widget import MessageWidget

THINK_FREELY = 'root ::= "<think>" [a-zA-Z ,.\']+ "</think>" "\\n\\nHello there!"'
BUDGET = 5


def thinking_desktop(make_desktop, ui_env, monkeypatch):
    d = make_desktop(load_settings(environ={**ui_env, "JARVIS_GENERATION_MAX_TOKENS": "60"}))
    plain = d.chat.assistant.request

    def thinking_request(*args, **kw):  # what a reasoning model would do by itself
        request = plain(*args, **kw)
        return replace(request, options=RequestOptions(grammar=Grammar(THINK_FREELY, ""), reasoning_budget=BUDGET))

    monkeypatch.setattr(d.chat.assistant, "request", thinking_request)
    return d


def test_thinking_streams_into_a_collapsed_section_and_survives_a_reload(make_desktop, drive, qtbot, ui_env,
                                                                         monkeypatch):
    seen: list[str] = []  # what reached the widget, in order: thinking first, then the answer
    monkeypatch.setattr(MessageWidget, "append_thinking",
                        lambda self, piece, real=MessageWidget.append_thinking: (seen.append("thinking"), real(self, piece)))
    monkeypatch.setattr(MessageWidget, "append",
                        lambda self, piece, real=MessageWidget.append: (seen.append("answer"), real(self, piece)))
    d = thinking_desktop(make_desktop, ui_env, monkeypatch)
    answer = drive.run(d.chat.send("Tell me a story."))
    drive.wait(answer.task.done)

    reply = d.chat.view.messages()[-1]
    assert reply.text == "Hello there!" and answer.thinking.strip()
    assert "thinking" in seen and seen.index("answer") > seen.index("thinking") and "thinking" not in seen[
        seen.index("answer"):]
    section = reply.thinking
    assert section.isVisible() and not section.expanded and not section.body.isVisible()
    assert section.toggle.text() == "Thinking" and section.text == answer.thinking
    stats = reply.stats.text()
    assert f"({BUDGET} thinking)" in stats, stats
    reply.grab().save("/tmp/thinking-collapsed.png")

    qtbot.mouseClick(section.toggle, Qt.LeftButton)
    assert section.expanded and section.body.isVisible() and section.body.text() == answer.thinking
    reply.grab().save("/tmp/thinking-expanded.png")
    d.window.grab().save("/tmp/thinking-window.png")
    qtbot.mouseClick(section.toggle, Qt.LeftButton)
    assert not section.body.isVisible()

    stored = drive.run(d.chat.store.messages(answer.conversation_id))[-1]
    assert stored.content == "Hello there!" and stored.meta["thinking"] == answer.thinking
    assert stored.meta["record"]["reasoning_tokens"] == BUDGET

    # Reopened (another conversation in between): the thinking is there again, collapsed.
    drive.run(d.chat.new_conversation())
    drive.run(d.chat.select(answer.conversation_id))
    again = d.chat.view.messages()[-1]
    assert again.text == "Hello there!" and again.thinking.text == answer.thinking
    assert again.thinking.isVisible() and not again.thinking.expanded
    assert again.stats.text() == stats


def test_the_title_says_thinking_until_the_answer_begins(qtbot):
    widget = MessageWidget("assistant", "", status="streaming")
    qtbot.addWidget(widget)
    widget.show()
    assert not widget.thinking.isVisible()  # nothing thought yet: no section
    widget.append_thinking("Let me see.")
    qtbot.waitUntil(widget.thinking.isVisible)
    assert widget.thinking.toggle.text() == "Thinking…"
    widget.append("Hello.")
    assert widget.thinking.toggle.text() == "Thinking"
    plain = MessageWidget("assistant", "No thinking here.")
    qtbot.addWidget(plain)
    plain.show()
    assert not plain.thinking.isVisible()
