"""A stdlib record's ``timestamp`` is when it was made, not when the daemon's handler saw it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

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
