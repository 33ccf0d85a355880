import json
import logging

import pytest

from jarvis.telemetry import RecordBus, RequestLog, RequestRecord, StepRecord

# The record's own field names (RequestRecord.as_dict, the one serialiser), plus an ISO time.
FIELDS = {"time", "timestamp", "request_id", "model", "operation", "source", "backend", "status", "error_kind",
          "finish_reason", "stop_sequence", "total_ms", "queue_ms", "queue_position", "model_load_ms", "prefill_ms",
          "ttft_ms", "decode_tokens_per_s", "prompt_tokens", "cached_prompt_tokens", "completion_tokens",
          "reasoning_tokens", "dropped_turns", "constrained", "cache", "cache_similarity", "cache_match", "cache_hit",
          "warm_start", "coalesced", "server_timings", "tool_rounds", "tool_ms", "tool_calls", "tool_schema_tokens"}


def record(i: int = 1, **kw) -> RequestRecord:
    return RequestRecord(request_id=f"req-{i}", model="smollm2", total_ms=123.4567, queue_ms=1.5, ttft_ms=20.0,
                         prompt_tokens=9, completion_tokens=30, decode_tokens_per_s=81.25,
                         prompt="my secret prompt", reply="the secret reply", timestamp=1_700_000_000.25, **kw)


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_json_line_per_request_without_text(tmp_path):
    path = tmp_path / "deep" / "logs" / "requests.jsonl"
    log = RequestLog(path)
    bus = RecordBus()
    bus.subscribe(log.observe)
    bus.emit(record(1))
    bus.emit(StepRecord(model="m", active_slots=1, queue_depth=0, batch_tokens=1, decode_tokens=1,
                        prefill_tokens=0, step_ms=1))  # not a request: not logged
    bus.emit(record(2, status="error", error_kind="QueueFull"))
    log.close()
    first, second = read_lines(path)
    assert set(first) == FIELDS
    assert first["time"] == "2023-11-14T22:13:20.250+00:00" and first["timestamp"] == 1_700_000_000.25
    # approx: both are computed (a rounding to microseconds, a ratio) and went through JSON
    assert first["request_id"] == "req-1" and first["total_ms"] == pytest.approx(123.457)
    assert first["decode_tokens_per_s"] == pytest.approx(81.25)
    assert first["warm_start"] is True and first["cache_hit"] is False
    assert second["status"] == "error" and second["error_kind"] == "QueueFull"
    assert "secret" not in path.read_text()


def test_prompts_only_when_asked(tmp_path):
    path = tmp_path / "requests.jsonl"
    log = RequestLog(path, log_prompts=True)
    log.observe(record())
    log.close()
    (entry,) = read_lines(path)
    assert entry["prompt"] == "my secret prompt" and entry["reply"] == "the secret reply"


def test_rotates_by_size_and_keeps_n_backups(tmp_path):
    path = tmp_path / "requests.jsonl"
    log = RequestLog(path, max_bytes=2000, backups=2)
    for i in range(100):  # ~350 bytes a line: rotates every ~6 lines
        log.observe(record(i))
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["requests.jsonl", "requests.jsonl.1", "requests.jsonl.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size < 2000 + 400
    # Newest in the live file, older ones in .1, then .2; the rest fell off.
    ids = [int(e["request_id"].split("-")[1]) for name in files[::-1] for e in read_lines(tmp_path / name)]
    assert ids == sorted(ids) and ids[-1] == 99 and len(ids) < 100


def test_unwritable_directory_warns_once_and_never_raises(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log directory should be")
    log = RequestLog(blocker / "logs" / "requests.jsonl")
    with caplog.at_level(logging.WARNING, logger="jarvis.telemetry.request_log"):
        for i in range(5):
            log.observe(record(i))
        log.flush()
    log.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not-a-dir" in warnings[0].getMessage()
    assert log.dropped == 5


def test_full_disk_warns_once_and_never_raises(caplog):
    log = RequestLog("/dev/full")  # every write fails with ENOSPC
    with caplog.at_level(logging.WARNING, logger="jarvis.telemetry.request_log"):
        for i in range(3):
            log.observe(record(i))
        log.close()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert log.dropped == 3


def test_no_backups_starts_the_file_afresh(tmp_path):
    """backups = 0 keeps one bounded file (the standard RotatingFileHandler alone would grow forever)."""
    path = tmp_path / "requests.jsonl"
    log = RequestLog(path, max_bytes=2000, backups=0)
    for i in range(40):
        log.observe(record(i))
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["requests.jsonl"]
    assert path.stat().st_size < 2000 and read_lines(path)[-1]["request_id"] == "req-39"


def test_a_full_queue_drops_lines_and_never_blocks_the_emitter(tmp_path):
    log = RequestLog(tmp_path / "requests.jsonl", max_pending=1)
    for i in range(200):  # far faster than the writer: most find the queue full
        log.observe(record(i))
    log.close()
    written = len(read_lines(tmp_path / "requests.jsonl"))
    assert written + log.dropped == 200 and written >= 1


def test_as_dict_is_the_record_without_its_gaps_and_copies_what_it_hands_out():
    """as_dict serialises field by field (not dataclasses.asdict, which deep-copied every per-token
    gap only to drop them): the same keys and values as the record's fields, minus inter_token_ms
    and the texts, tool calls as dicts, and a server's nested figures copied, so a caller that
    edits the dict leaves the frozen record as it was."""
    from dataclasses import asdict, fields

    from jarvis.telemetry.records import ToolCallFigures

    timings = {"predicted_ms": 1.25, "nested": {"draft": [1, 2]}}
    r = record(inter_token_ms=tuple(float(i) for i in range(96)), server_timings=timings, tool_schema_tokens={"time": 40},
               tool_calls=(ToolCallFigures("time", "now", "ok", 1.23456),))
    d = r.as_dict()
    expected = {f.name for f in fields(r)} - {"inter_token_ms", "prompt", "reply"} | {"cache_hit"}
    assert set(d) == expected
    assert d["tool_calls"] == [{**asdict(r.tool_calls[0]), "ms": 1.235}] and d["total_ms"] == 123.457
    assert d["server_timings"] == timings and d["tool_schema_tokens"] == {"time": 40}
    d["server_timings"]["nested"]["draft"].append(3)
    d["tool_schema_tokens"]["time"] = 0
    assert r.server_timings["nested"]["draft"] == [1, 2] and r.tool_schema_tokens == {"time": 40}
    assert r.as_dict(texts=True)["reply"] == "the secret reply"
