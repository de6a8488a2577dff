"""An upgrade's new process whose aiodaemon is later than today's: it has a line we lack.

A later release may add channel lines (see aiodaemon/_prefork/_handoff.py):
this one says ``X`` lines before ``R`` (a hypothetical progress report), and
otherwise takes over as the protocol says: ``R``, then at ``G`` its pid into
the inherited pidfile, ``W``. Then it prints ``took over`` and waits for a
signal. Replaces tests/programs/upgrade_app.py on disk. Plain Python, no aiodaemon.
"""

from __future__ import annotations

import json
import os
import signal
import socket


def _line(channel: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = channel.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def main() -> None:
    handoff = json.loads(os.environ["AIODAEMON_HANDOFF"])
    [pidfile] = [entry["fd"] for entry in handoff["fds"] if entry["role"] == "pidfile"]
    with socket.socket(fileno=handoff["channel"]) as channel:
        _line(channel)  # the secret
        channel.sendall(b"X warming caches 1/2\nX warming caches 2/2\nR\n")
        if _line(channel) != b"G\n":
            raise SystemExit("no G")
        data = f"{os.getpid()}\n".encode()
        os.pwrite(pidfile, data, 0)
        os.ftruncate(pidfile, len(data))
        channel.sendall(b"W\n")
        os.write(handoff["stderr"], b"took over\n")
        while True:  # until a signal's default action ends it (no handler to miss)
            signal.sigwait({signal.SIGUSR1})


if __name__ == "__main__":
    main()
