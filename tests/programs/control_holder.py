"""Hold a pidfile's lock and lend a test's control listener this process's credentials.

argv: PIDFILE FD. FD is a bound unix socket the test serves:
``listen()`` here makes ``SO_PEERCRED`` name this process, the pidfile's lock
holder, to every client, so the CLI trusts the answers the test writes (see
tests/test_control_fuzz_client.py). Prints "ready" once it listens, then lives
until its stdin closes or a signal ends it. Plain Python, no aiodaemon.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys


def main() -> None:
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    listener = socket.socket(fileno=int(sys.argv[2]))
    listener.listen(64)
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
