"""A syslog collector that is up but stops reading must not hold up the other sinks.

rsyslogd or journald stuck on a full disk, or a remote collector overloaded,
leave their socket open and stop reading it: its buffer fills, and a blocking
send then held the log writer thread. On a Unix socket the file got ~900 of
100,000 records, no warning and no exit record; over TCP 58 % were dropped
from the file. Sends are non-blocking now: the collector's messages wait in
its backlog (and are counted when it overflows) while the file gets all.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .support import program, python, read_json_lines


@contextmanager
def _deaf_collector(transport: str, tmp_path: Path) -> Iterator[str]:
    """A syslog target that takes the connection (or the socket) and never reads a byte."""
    if transport == "unix":
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(tmp_path / "log.sock"))
            yield str(tmp_path / "log.sock")
    else:
        with socket.socket() as sock:
            # Never accepted: the kernel completes the handshake and fills the
            # connection's receive buffer on its own.
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_a_collector_that_stops_reading_costs_the_log_file_nothing(
    tmp_path: Path, transport: str
) -> None:
    """40,300 records: every one in the file, in time, and what syslog lost is told."""
    log_file = tmp_path / "app.jsonl"
    with _deaf_collector(transport, tmp_path) as target:
        options = {"syslog": target, "log_file": str(log_file)}
        result = python([program("syslog_outage"), json.dumps(options)], timeout=60)
    assert result.returncode == 0, result.stderr
    records = read_json_lines(log_file)
    events = [r["event"] for r in records]
    assert "log records dropped" not in events
    assert events.count("burst") == 40_000
    assert events.count("trickle") == 300
    assert "exit" in events
    # The collector's socket took a part (its buffers); the rest overflowed the
    # backlog or went with the process, and the warnings say how many.
    lost = sum(int(str(r["lost"])) for r in records if r["event"] == "syslog records lost")
    assert 0 < lost < len(records), lost
