"""The <think> splitter below every API surface: streamed in any chunking, it gives exactly what
the whole reply gives, and only a think block at the very start counts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.http.answer import AnswerParser
from jarvis.reasoning import ReasoningSplitter, split
from jarvis.request import Chunk, ToolCall

REPLIES = ["<think>\nThe user greets me.\n</think>\n\nHello there!", "  Plain answer, no thinking.",
           "Say <think> in the middle", "<think>never closed", "<thi", "\n<think></think>Only the answer",
           "<think>a</think>", ""]


def streamed(text: str, cuts: list[int], thinking: bool = False) -> tuple[str, str]:
    splitter = ReasoningSplitter(thinking)
    pieces, start = [], 0
    for cut in sorted(set(c % (len(text) + 1) for c in cuts)) + [len(text)]:
        pieces += splitter.feed(text[start:cut])
        start = max(start, cut)
    pieces += splitter.finish()
    return ("".join(t for k, t in pieces if k == "reasoning"), "".join(t for k, t in pieces if k == "content"))


def test_whole_replies_split_as_a_reader_expects():
    assert split(REPLIES[0]) == ("The user greets me.", "Hello there!")
    assert split(REPLIES[1]) == (None, "  Plain answer, no thinking.")
    assert split(REPLIES[2]) == (None, "Say <think> in the middle")  # only at the start
    assert split(REPLIES[3]) == ("never closed", "")
    assert split(REPLIES[4]) == (None, "<thi")  # a tag that never came is text
    assert split(REPLIES[5]) == ("", "Only the answer")
    assert split("The answer.</think>", thinking=True) == ("The answer.", "")  # a template that opened it


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REPLIES), st.lists(st.integers(min_value=0, max_value=80), max_size=12))
def test_any_chunking_streams_what_the_whole_reply_gives(reply, cuts):
    reasoning, content = split(reply)
    assert streamed(reply, cuts) == (reasoning or "", content)


def test_the_parser_takes_thinking_split_upstream_and_the_calls_of_the_last_chunk():
    parser = AnswerParser()
    call = ToolCall("call_1", "f", '{"x": 1}')
    pieces = parser.feed(Chunk("", reasoning="Thought by a remote server."))  # already split upstream
    pieces += parser.feed(Chunk("<think>And here.</think>\nThe answer."))
    pieces += parser.feed(Chunk("", done=True, tool_calls=(call,))) + parser.finish()
    assert pieces == [("reasoning", "Thought by a remote server."), ("reasoning", "And here."), ("content", "The answer.")]
    assert parser.reasoning_text == "Thought by a remote server.And here." and parser.content_text == "The answer."
    assert parser.calls == (call,)
