"""Syslog over UDP while the collector is away (audit-verify F3): records wait, none vanish.

A connected UDP socket learns of a collector that is gone from the ICMP
"port unreachable" it gets back (at once on loopback); the daemon keeps the
refused datagram and what follows until the collector answers again.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from .support import free_port, program, python, read_json_lines, read_pid, wait_for, wait_gone


class UdpCollector:
    """A syslog receiver on 127.0.0.1: a real UDP socket read by a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[bytes] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._quit = (-1, -1)

    def start(self) -> None:
        """Bind the port and read until stopped."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", self.port))
        self._quit = os.pipe()
        self._thread = threading.Thread(target=self._read, args=(self._sock, self._quit[0]))
        self._thread.start()

    def _read(self, sock: socket.socket, quit_r: int) -> None:
        while True:
            readable, _, _ = select.select([sock.fileno(), quit_r], [], [])
            if quit_r in readable:
                return
            self.messages.append(sock.recv(70000))

    def stop(self) -> None:
        """Close the port: datagrams to it are refused (ICMP port unreachable)."""
        if self._thread is not None and self._sock is not None:
            os.write(self._quit[1], b"!")
            self._thread.join(10)
            for fd in self._quit:
                os.close(fd)
            # Closing drops what is queued. Connected elsewhere (the discard
            # port), the socket refuses the daemon's datagrams while what it
            # accepted is read; then it closes.
            self._sock.connect(("127.0.0.1", 9))
            self._sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    self.messages.append(self._sock.recv(70000))
            self._sock.close()
        self._thread = self._sock = None

    def records(self) -> list[dict[str, Any]]:
        """The JSON records received (RFC 5424 header stripped)."""
        return [json.loads(m[m.index(b"{") :]) for m in list(self.messages)]

    def ticks(self) -> list[int]:
        """The tick numbers received, in arrival order."""
        return [int(r["n"]) for r in self.records() if r["event"] == "tick"]


def _ticks(log: Path) -> list[int]:
    return [int(str(r["n"])) for r in read_json_lines(log) if r["event"] == "tick"]


def test_udp_syslog_records_wait_for_a_collector_that_comes_back(tmp_path: Path) -> None:
    """Collector gone for a while, then back: every tick arrives once, in order, none lost."""
    collector = UdpCollector(free_port(socket.SOCK_DGRAM))
    collector.start()
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.log"
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(log),
        "syslog": f"udp://127.0.0.1:{collector.port}",
    }
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(collector.stop)
        started = python([program("security_daemon"), json.dumps(options)])
        assert started.returncode == 0, started.stderr
        pid = read_pid(pidfile)
        cleanup.callback(wait_gone, pid)
        cleanup.callback(os.kill, pid, signal.SIGTERM)
        wait_for(lambda: len(collector.ticks()) > 3, what="ticks at the collector")
        collector.stop()
        down = max(_ticks(log))
        wait_for(lambda: max(_ticks(log)) > down + 25, what="ticks while the collector is down")
        collector.start()
        back = max(_ticks(log))
        wait_for(lambda: max(collector.ticks(), default=-1) > back, what="the waiting ticks")
    ticks = collector.ticks()
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), "ticks lost or reordered"
    assert ticks[0] == 0
    events = [r["event"] for r in read_json_lines(log)]
    assert "syslog records lost" not in events
    assert "syslog records lost" not in [r["event"] for r in collector.records()]
