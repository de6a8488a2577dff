"""A stdlib record's ``timestamp`` is when it was made, not when the daemon's handler saw it."""

from __future__ import annotations

from pathlib import Path

from .support import program, python, read_json_lines


def test_a_record_handled_later_keeps_the_time_it_was_made(tmp_path: Path) -> None:
    """Records handed on by a QueueListener carry their ``created``, rounded to the microsecond."""
    log = tmp_path / "log.jsonl"
    result = python([program("log_received_records"), log])
    assert result.returncode == 0, result.stderr
    records = [r for r in read_json_lines(log) if r["logger"] == "worker"]
    stamps = {r["event"]: r["timestamp"] for r in records}
    ready = next(r["timestamp"] for r in read_json_lines(log) if r["event"] == "ready")
    # A ``created`` that is no time shows when the daemon logged the record.
    assert str(stamps.pop("no time at all")) > str(ready)
    assert str(stamps.pop("past the year 9999")) > str(ready)
    assert stamps == {
        "a quarter past": "2001-09-09T01:46:40.250000Z",
        "just before the next second": "2001-09-09T01:46:41.000000Z",
        "%s and %s": "2001-09-09T01:46:43.500000Z",
    }
