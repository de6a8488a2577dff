"""A record too long for one syslog message arrives in parts that are each valid UTF-8.

A part cut at a byte count may split a character of two to four bytes: the
part is then not UTF-8, which journald stores as a blob (``journalctl`` shows
``[N blob data]`` instead of the text) and a reader that decodes each
message line rejects. Checked against a real rsyslogd on all three transports.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.programs.syslog_long_text import TEXT
from tests.support import PROGRAMS, Rsyslog, aiodaemon_cli, wait_for

#: The structured data that starts each part (after the header on the Unix socket).
_PART = re.compile(r'^\[part@32473 seq="(\d+)" of="\d+" id="[^"]+"\] ?')


@pytest.mark.parametrize("transport", ["unix", "udp", "tcp"])
def test_the_parts_of_a_long_non_ascii_record_are_each_utf8(
    rsyslog: Rsyslog, transport: str
) -> None:
    """Each part rsyslogd writes decodes as UTF-8 on its own, and the parts join into the record."""
    target = {
        "unix": str(rsyslog.socket),
        "udp": f"udp://127.0.0.1:{rsyslog.udp_port}",
        "tcp": f"tcp://127.0.0.1:{rsyslog.tcp_port}",
    }[transport]
    result = aiodaemon_cli("run", "syslog_long_text:main", "--syslog", target, cwd=PROGRAMS)
    assert result.returncode == 0, result.stderr

    def lines() -> list[bytes] | None:
        # Bytes, not rsyslog.messages(), which decodes the whole file at once.
        if not rsyslog.output.exists():
            return None
        received = rsyslog.output.read_bytes().split(b"\n")[:-1]
        return received if any(b'"event":"exit"' in line for line in received) else None

    parts: dict[int, str] = {}
    for line in wait_for(lines, 30, "the exit record"):
        *_, data, msg = line.split(b"|", 5)
        text = (msg if data == b"-" else data + b" " + msg).decode("utf-8").strip()
        if found := _PART.match(text):
            parts[int(found[1])] = text[found.end() :]
    assert len(parts) > 2
    assert json.loads("".join(parts[n] for n in sorted(parts)))["text"] == TEXT
