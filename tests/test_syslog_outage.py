"""A syslog collector that stays down: the log file keeps every record and says what
syslog lost without repeating itself at every batch.

While the 32,768-message backlog is full, each batch pushes older messages
out; the ``syslog records lost`` warning was written after every batch (itself
one more message pushed out), a third of a busy daemon's log for as long as
the outage lasted. A real daemon, a real TCP port nobody listens on.
"""

from __future__ import annotations

import json
from pathlib import Path

from .support import free_port, program, python, read_json_lines


def _run_with_syslog_down(tmp_path: Path, name: str) -> list[dict[str, object]]:
    """Run tests/programs/NAME.py to its exit, syslog down; its log file's records."""
    log_file = tmp_path / "app.jsonl"
    # Nothing listens there: every connect is refused at once.
    options = {"syslog": f"tcp://127.0.0.1:{free_port()}", "log_file": str(log_file)}
    result = python([program(name), json.dumps(options)], timeout=60)
    assert result.returncode == 0, result.stderr
    return read_json_lines(log_file)


def test_a_long_syslog_outage_is_told_once_not_at_every_batch(tmp_path: Path) -> None:
    """300 batches past a full backlog: every record in the file, a loss warning per 10 s."""
    records = _run_with_syslog_down(tmp_path, "syslog_outage")
    events = [r["event"] for r in records]
    assert events.count("burst") == 40_000
    assert events.count("trickle") == 300
    notices = [r for r in records if r["event"] == "syslog records lost"]
    # When the backlog first overflowed, and the rest at the exit (last in the file);
    # one more per 10 s of outage on a slow machine (one per batch before: 306).
    assert 1 <= len(notices) <= 6, [r["lost"] for r in notices]
    assert records[-1]["event"] == "syslog records lost"
    # Nothing reached syslog: every message it was given is counted.
    lost = [r["lost"] for r in notices]
    assert all(isinstance(n, int) for n in lost)
    assert sum(n for n in lost if isinstance(n, int)) >= 40_300


def test_the_backlog_is_bounded_in_bytes_too(tmp_path: Path) -> None:
    """400 records of 64 KiB for a collector that is down: 16 MiB wait, not all 26.

    The backlog was bounded only in messages (32,768 of up to 8,000 bytes:
    256 MiB held through an outage); these 3,600 messages then all waited, the
    loss told only at the exit. Now the oldest go once 16 MiB wait, and the
    loss is told while the outage lasts.
    """
    records = _run_with_syslog_down(tmp_path, "syslog_big_records")
    events = [r["event"] for r in records]
    assert events.count("big") == 400
    done = events.index("done")
    during = [r for r in records[:done] if r["event"] == "syslog records lost"]
    assert during, "no loss told before the exit"
    # Every message is counted in the end: 9 per record at least, and done's.
    lost = [r["lost"] for r in records if r["event"] == "syslog records lost"]
    assert sum(n for n in lost if isinstance(n, int)) >= 400 * 9
