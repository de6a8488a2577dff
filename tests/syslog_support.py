"""A syslog collector for tests: a real datagram socket, read by a thread, that can go away."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import threading
from pathlib import Path
from typing import Any


class DatagramCollector:
    """Receives syslog datagrams until closed; subclasses say where it binds.

    Closing drops nothing the socket accepted: new datagrams are refused
    first (the daemon sees the collector gone), then what is queued is read.
    """

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._quit = (-1, -1)

    def _bind(self) -> socket.socket:
        raise NotImplementedError

    def _refuse_new(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Bind and read until closed."""
        self._sock = self._bind()
        self._quit = os.pipe()
        self._thread = threading.Thread(target=self._read, args=(self._sock, self._quit[0]))
        self._thread.start()

    def _read(self, sock: socket.socket, quit_r: int) -> None:
        # A collector that stops reading would block the daemon's sends (and its exit).
        while True:
            readable, _, _ = select.select([sock.fileno(), quit_r], [], [])
            if quit_r in readable:
                return
            self.messages.append(sock.recv(70000))

    def close(self) -> None:
        """Stop reading and close the socket; nothing it accepted is dropped."""
        if self._thread is not None and self._sock is not None:
            os.write(self._quit[1], b"!")
            self._thread.join(10)
            for fd in self._quit:
                os.close(fd)
            self._refuse_new(self._sock)
            self._sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while message := self._sock.recv(70000):
                    self.messages.append(message)
            self._sock.close()
        self._thread = self._sock = None

    def records(self) -> list[dict[str, Any]]:
        """The JSON records received so far (the syslog header stripped)."""
        return [json.loads(m[m.index(b"{") :]) for m in list(self.messages)]

    def ticks(self) -> list[int]:
        """The tick numbers received, in arrival order."""
        return [int(r["n"]) for r in self.records() if r["event"] == "tick"]


class UdpCollector(DatagramCollector):
    """A syslog receiver on 127.0.0.1: a real UDP socket read by a thread."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", self.port))
        return sock

    def _refuse_new(self, sock: socket.socket) -> None:
        # Connected elsewhere (the discard port), the socket refuses the
        # daemon's datagrams (ICMP port unreachable) while what it accepted is read.
        sock.connect(("127.0.0.1", 9))

    def stop(self) -> None:
        """Close the port: datagrams to it are refused."""
        self.close()


class UnixCollector(DatagramCollector):
    """A syslog receiver on a unix datagram socket (a /dev/log), read by a thread."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _bind(self) -> socket.socket:
        # A stale file goes first, as rsyslogd does.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        return sock

    def _refuse_new(self, sock: socket.socket) -> None:
        # The sender gets EPIPE; the socket file stays.
        sock.shutdown(socket.SHUT_RD)

    def stop(self) -> None:
        """Go away and remove the socket file."""
        self.close()
        self.path.unlink()
