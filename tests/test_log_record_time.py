"""A stdlib record's ``timestamp`` is when it was made, not when the daemon's handler saw it."""

from __future__ import annotations

import json
import logging
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiodaemon._logs._logchain import StdlibHandler, processors

from .support import free_port, program, python, read_json_lines
from .syslog_support import UdpCollector, UnixCollector


def test_a_record_handled_later_keeps_the_time_it_was_made(tmp_path: Path) -> None:
    """Records handed on by a QueueListener carry their ``created``, rounded to the microsecond."""
    log = tmp_path / "log.jsonl"
    result = python([program("log_received_records"), json.dumps({"log_file": str(log)})])
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
        # Four digits, as ISO 8601 has them: not "385-07-25...".
        "before the year 1000": "0385-07-25T07:06:40.000000Z",
    }


def _worker_messages(messages: list[bytes]) -> dict[str, bytes]:
    """The syslog header of each record from the worker logger, by event."""
    found = {}
    for message in messages:
        record = json.loads(message[message.index(b"{") :])
        if record["logger"] == "worker":
            found[record["event"]] = message[: message.index(b"{")]
    return found


def test_rfc5424_header_says_when_the_record_was_made() -> None:
    """The UDP syslog header's TIMESTAMP is the record's own, not when the writer sent it."""
    collector = UdpCollector(free_port(socket.SOCK_DGRAM))
    collector.start()
    try:
        options = {"syslog": f"udp://127.0.0.1:{collector.port}"}
        result = python([program("log_received_records"), json.dumps(options)])
        assert result.returncode == 0, result.stderr
    finally:
        collector.stop()
    heads = _worker_messages(collector.messages)
    assert heads["a quarter past"].startswith(b"<28>1 2001-09-09T01:46:40.250000Z ")
    assert heads["just before the next second"].startswith(b"<28>1 2001-09-09T01:46:41.000000Z ")
    for message in collector.messages:
        record = json.loads(message[message.index(b"{") :])
        assert message.split(b" ")[1] == str(record["timestamp"]).encode()


def test_local_syslog_header_is_the_record_time_in_the_daemon_zone(tmp_path: Path) -> None:
    """On /dev/log the syslog(3) stamp is the record's own second, in local time (TZ)."""
    collector = UnixCollector(tmp_path / "dev-log")
    collector.start()
    try:
        options = {"syslog": str(collector.path)}
        result = python(
            [program("log_received_records"), json.dumps(options)], env={"TZ": "Asia/Kathmandu"}
        )
        assert result.returncode == 0, result.stderr
    finally:
        collector.stop()
    heads = _worker_messages(collector.messages)
    # 01:46:40 UTC is 07:31:40 in Kathmandu (UTC+05:45).
    assert heads["a quarter past"].startswith(b"<28>Sep  9 07:31:40 ")
    assert heads["just before the next second"].startswith(b"<28>Sep  9 07:31:41 ")


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(created=st.floats(min_value=-62_135_596_800.0, max_value=253_402_300_799.999))
@example(created=1_000_000_000.9999996)
@example(created=1_000_000_000.0)
@example(created=-50_000_000_000.0)
def test_a_record_time_prints_as_one_valid_utc_instant(created: float) -> None:
    """Any ``created`` prints six digits, a second below 60, within half a microsecond."""
    lines: list[bytes] = []
    handler = StdlibHandler(processors("json", colors=False), lambda _, line: lines.append(line), 0)
    record = {"msg": "m", "levelno": logging.INFO, "levelname": "INFO", "created": created}
    handler.handle(logging.makeLogRecord(record))
    stamp = str(json.loads(lines[0])["timestamp"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:[0-5]\d:[0-5]\d\.\d{6}Z", stamp), stamp
    shown = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    exact = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(created * 1e6))
    assert shown == exact
