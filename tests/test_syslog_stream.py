"""A /dev/log that is a stream socket (syslog-ng's ``unix-stream()``) gets syslog(3)'s framing.

glibc's ``syslog(3)``, systemd and Python's ``SysLogHandler`` end each message
with a NUL there, and syslog-ng splits what it reads at a NUL or a newline: a
message must not lean on a length prefix the reader does not expect, nor
hold a newline (a console line's traceback), which would begin another.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

from .support import program, python


def _messages(tmp_path: Path, name: str, options: dict[str, Any]) -> list[bytes]:
    """Run ``program(name)`` with ``options`` and a stream /dev/log; the messages it read."""
    path = tmp_path / "log.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    received = bytearray()

    def collect() -> None:
        connection, _ = server.accept()
        with connection:
            while chunk := connection.recv(65536):
                received.extend(chunk)

    reader = threading.Thread(target=collect)
    reader.start()
    try:
        options = {"detach": False, "syslog": str(path), **options}
        ran = python([program(name), json.dumps(options), tmp_path])
        assert ran.returncode == 0, ran.stderr
        reader.join(30)
    finally:
        server.close()
    assert received.endswith(b"\0"), bytes(received[-200:])
    messages = bytes(received).split(b"\0")[:-1]
    for message in messages:
        assert message.startswith(b"<"), message[:200]
        assert b"\n" not in message, message
    return messages


def test_each_record_on_a_stream_dev_log_is_one_nul_terminated_message(tmp_path: Path) -> None:
    """Every message is ``<PRI>Mmm dd hh:mm:ss APP[PID]: {json}`` followed by a NUL."""
    events = []
    for message in _messages(tmp_path, "log_odd_values", {}):
        head, _, body = message.partition(b": ")
        assert head.endswith(b"]"), message[:200]
        events.append(json.loads(body)["event"])
    assert events[0] == "starting"
    assert "plain" in events
    assert events[-1] == "exit"


def test_a_console_traceback_on_a_stream_dev_log_stays_one_message(tmp_path: Path) -> None:
    """Its line breaks, the exception message's too, go as ``#012``, as rsyslog shows them."""
    messages = _messages(tmp_path, "log_controls", {"log_format": "console"})
    [logged] = [m for m in messages if b"GET" in m]
    assert b"#012Traceback (most recent call last):#012" in logged
    assert b"ValueError: no route" in logged
    assert b"fake#012line" in logged
