"""A syslog daemon listening on a Unix *stream* socket (syslog-ng's ``unix-stream("/dev/log")``).

``syslog(3)`` ends each message with a NUL on such a socket, and that is the
framing its collectors split on. Octet counting (RFC 6587, right for
``tcp://``) there made syslog-ng read the whole log as one message, tagged
with the first frame's length.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

from tests.support import PROGRAMS, aiodaemon_cli

#: The syslog(3) format aiodaemon writes on a Unix socket.
_HEADER = re.compile(rb"<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d syslog_levels\[(\d+)\]: ")


def test_each_record_is_one_nul_ended_message_as_syslog3_sends(tmp_path: Path) -> None:
    """Split at NULs as syslog-ng does, the stream holds one whole message per record."""
    path = tmp_path / "log.sock"
    received = bytearray()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()
        server.settimeout(30)

        def collect() -> None:
            # One connection: the daemon's (it connects at the start and keeps it).
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(65536):
                    received.extend(data)

        collector = threading.Thread(target=collect)
        collector.start()
        result = aiodaemon_cli(
            "run", "syslog_levels:main", "--syslog", path, "--log-level", "debug", cwd=PROGRAMS
        )
        collector.join(30)
    assert result.returncode == 0, result.stderr
    assert received.endswith(b"\0")
    messages = bytes(received).split(b"\0")[:-1]
    events = []
    for message in messages:
        header = _HEADER.match(message)
        assert header is not None, message[:120]
        assert int(header[2]) > 0
        body = message[header.end() :]
        if body.startswith(b"[part@"):
            continue  # a part of a record longer than a message (tests/test_syslog_parts.py)
        events.append(json.loads(body)["event"])
    assert events[:2] == ["starting", "ready"]
    assert [e for e in events if e.startswith("at ")] == [
        "at debug",
        "at info",
        "at warning",
        "at error",
        "at critical",
    ]
    assert "stdlib warning" in events
    assert events[-1] == "exit"
