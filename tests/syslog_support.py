"""A syslog collector for tests: a real datagram socket, read by a thread, that can go away."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import threading
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
