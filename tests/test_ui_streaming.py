"""A streaming answer's widget: one render per frame however many tokens arrive, and only the
block being written re-rendered (counted renders, never timed)."""

from __future__ import annotations

from ui.chat.markdown import settled_end
from ui.chat.message_widget import MessageWidget

ANSWER = ("The plan has two parts.\n\n"
          "```python\nprint('one')\n\nprint('two')\n```\n\n"
          "Then the robot walks into the city, where the lights are bright and")


def streaming(qtbot) -> MessageWidget:
    w = MessageWidget("assistant", "", status="streaming")
    qtbot.addWidget(w)
    w.resize(600, 400)
    w.show()
    return w


def next_frame(qtbot, w: MessageWidget, renders: int) -> None:
    """Let the event loop run until the widget rendered the frame after `renders`."""
    qtbot.waitUntil(lambda: w.renders > renders and not w._timer.isActive())


def test_many_tokens_within_one_frame_render_once(qtbot):
    w = streaming(qtbot)
    before = w.renders
    for i in range(200):  # no event loop turn between them: they all arrive within one frame
        w.append(f"word{i} ")
    assert w.renders == before  # appending only stores the text
    next_frame(qtbot, w, before)
    assert w.renders == before + 1  # one render for the 200 tokens, and none pending
    assert "word199" in w.body.text() and w.text.startswith("word0 word1 ")
    w.append("last")
    next_frame(qtbot, w, before + 1)
    assert w.renders == before + 2 and "last" in w.body.text()


def test_streaming_renders_each_finished_block_once_and_only_the_last_one_each_frame(qtbot, qapp):
    w = streaming(qtbot)
    settled_texts = {}
    for i in range(0, len(ANSWER), 5):  # five characters a frame
        renders = w.renders
        w.append(ANSWER[i:i + 5])
        next_frame(qtbot, w, renders)
        for label in w._settled:  # a settled part's label, once made, is never set again
            settled_texts.setdefault(id(label), label.text())
            assert label.text() == settled_texts[id(label)]
    assert w.settled_renders == len(w._settled) == 2  # the paragraph, the code block: rendered once each
    assert "city" in w.body.text() and "print" not in w.body.text()  # the body holds the last block only
    assert w.code_blocks == ["print('one')\n\nprint('two')"]
    w._link("copy:0")  # the copy link of a code block in a settled part
    assert qapp.clipboard().text() == "print('one')\n\nprint('two')"
    renders = w.renders
    w.finish(status="complete", stats="stats")
    assert w.renders == renders + 1 and not w._settled  # done: the whole answer in one label, once
    whole = w.body.text()
    assert "two parts" in whole and "print" in whole and "city" in whole
    assert w.code_blocks == ["print('one')\n\nprint('two')"]


def test_settled_end_waits_for_a_block_to_be_closed_by_the_next_one():
    assert settled_end("one\n\ntwo") == len("one\n\n")
    assert settled_end("one\n\n") == 0  # the next line may still continue a list item
    assert settled_end("- a\n\n  more of a\n") == 0  # it did: an indented continuation
    assert settled_end("```\nx\n\ny\n") == 0  # a blank line inside an open code fence
    assert settled_end("```\nx\n\ny\n```\n\nnext") == len("```\nx\n\ny\n```\n\n")
