"""Stop strings and UTF-8 handling of streamed text."""

from jarvis.engine.text import StreamingText


def feed_all(stream, parts):
    return [stream.feed(p.encode()) for p in parts] + [stream.finish()]


def test_stop_string_split_across_tokens_is_held_back_and_removed():
    s = StreamingText(stop=("###",))
    out = feed_all(s, ["Hello", " wor", "ld#", "#", "# tail"])
    assert "".join(out) == "Hello world" and s.stopped
    assert "#" not in "".join(out)


def test_text_that_only_looks_like_a_stop_prefix_is_released():
    s = StreamingText(stop=("STOP",))
    out = feed_all(s, ["a S", "T", "x"])
    assert "".join(out) == "a STx" and not s.stopped


def test_earliest_of_several_stop_strings_wins():
    s = StreamingText(stop=("b", "cd"))
    assert "".join(feed_all(s, ["acdb"])) == "a"
    assert s.matched == "cd"  # what the reply's stop_sequence says


def test_the_stop_string_that_ended_it_is_named_the_longest_where_several_start():
    s = StreamingText(stop=("x", "xy", "never"))
    assert "".join(feed_all(s, ["ab", "xyz"])) == "ab" and s.matched == "xy"
    plain = StreamingText(stop=("never",))
    feed_all(plain, ["ab"])
    assert plain.matched == "" and not plain.stopped


def test_truncated_multibyte_character_is_dropped_at_the_end():
    s = StreamingText()
    data = "é🐉".encode()
    assert s.feed(data[:-1]) == "é"
    assert s.finish() == ""
