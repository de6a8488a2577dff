"""A TCP syslog collector that resets the connection: what the daemon's kernel held is counted.

RFC 6587 syslog has no acknowledgements: the records a collector's kernel had
taken but the collector never read are lost without a trace (docs/logging.md
says so). Those still waiting unsent in the daemon's own kernel are known,
though, and counted in ``syslog records lost``. Here a collector stops
reading until the daemon's kernel holds records it cannot send (the
collector's window shut), then resets the connection, as one that crashes
with unread data does; every record then arrived at the next connection, was
counted lost, or was in the collector's own buffer. A real daemon, real
sockets, the state read from ``/proc/net/tcp``.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import threading
from pathlib import Path

from .support import PYTHON, clean_env, program, read_json_lines, wait_for

#: ``/proc/net/tcp``'s ``tr`` of a socket whose peer's window is shut: the zero-window probe.
_PROBING = 4


def _sender_state(local: int, remote: int) -> tuple[int, int] | None:
    """``(bytes queued, timer)`` of the socket from 127.0.0.1:``local`` to :``remote``."""
    wanted = (f"0100007F:{local:04X}", f"0100007F:{remote:04X}")
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        if (fields[1], fields[2]) == wanted:
            return int(fields[4].split(":")[0], 16), int(fields[5].split(":")[0], 16)
    return None


def _frames(data: bytes) -> list[bytes]:
    """The whole RFC 6587 octet-counted messages at the start of ``data``."""
    messages = []
    while match := re.match(rb"(\d+) ", data):
        end = match.end() + int(match[1])
        if end > len(data):
            break
        messages.append(data[match.end() : end])
        data = data[end:]
    return messages


def test_records_the_daemons_kernel_held_at_a_reset_are_counted_lost(tmp_path: Path) -> None:
    """Every record arrived, was counted lost, or was in the reset collector's unread buffer."""
    log_file = tmp_path / "app.jsonl"
    listener = socket.socket()
    # Inherited by the connection: the collector's window shuts after a few KB.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(30)
    port = listener.getsockname()[1]
    options = {"syslog": f"tcp://127.0.0.1:{port}", "log_file": str(log_file)}
    daemon = subprocess.Popen(
        [PYTHON, str(program("syslog_reset_burst")), json.dumps(options), "3000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        text=True,
    )
    received = bytearray()
    try:
        first, (_, daemon_port) = listener.accept()
        assert daemon.stdout is not None
        assert daemon.stdout.readline() == "logged 3000\n"

        # The daemon's kernel holds records it cannot send: the collector reads nothing.
        def held() -> bool:
            state = _sender_state(daemon_port, port)
            return state is not None and state[0] > 0 and state[1] == _PROBING

        wait_for(held, 30, "the collector's window shut on records waiting in the daemon's kernel")
        unread = _frames(first.recv(1 << 20, socket.MSG_PEEK))
        first.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        first.close()  # a reset, as a collector that dies with records unread sends

        def collect() -> None:
            second, _ = listener.accept()
            with second:
                while chunk := second.recv(1 << 20):
                    received.extend(chunk)

        reader = threading.Thread(target=collect)
        reader.start()
        # The next records meet the reset (the daemon connects again), then it exits.
        _, err = daemon.communicate("go\n", timeout=60)
        assert daemon.returncode == 0, err
        reader.join(30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
        listener.close()
    records = read_json_lines(log_file)
    counted = sum(int(str(r["lost"])) for r in records if r["event"] == "syslog records lost")
    arrived = _frames(bytes(received))
    assert counted > 0
    assert len(records) == len(arrived) + counted + len(unread)
    ticks = [json.loads(m.split(b" - - ", 1)[1]).get("n") for m in unread + arrived]
    ticks = [n for n in ticks if n is not None]
    assert len(ticks) == len(set(ticks)), "a record arrived twice"
