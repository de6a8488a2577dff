"""A pidfile's holder without a handler for SIGUSR2 (and, with ``bare``, for SIGHUP).

argv: PIDFILE KIND. KIND ``v010``: what a daemon of aiodaemon 0.1.0 (commit
ed98bda, the CHANGELOG's 0.1.0 cut) shows the CLI, recorded here because the
test suite cannot build that tree: the pidfile locked with ``flock`` and
holding its pid, handlers for SIGHUP (a reload: "reloaded" on stdout) and
SIGTERM (exit 0), none for SIGUSR2 (it predates upgrades), and no control
socket. KIND ``bare``: only SIGTERM, as an ``aiodaemon.pep3143`` daemon's
default signal map. KIND ``deaf``: SIGTERM, and SIGHUP and SIGUSR2 ignored (a
program started under ``nohup`` ignores SIGHUP). What is not handled is set to
its default, whatever the test runner ignores. Prints "ready" once its pid is
written, then waits for signals. Plain Python, no aiodaemon.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
from types import FrameType

from tests.programs.signal_wait import wait_for_signals


def reloaded(signum: int, frame: FrameType | None) -> None:
    """SIGHUP: what 0.1.0's reload shows outside, here a line on stdout."""
    print("reloaded", flush=True)


def terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM: remove the pidfile, as a daemon does at its exit, and exit 0."""
    os.unlink(sys.argv[1])
    sys.exit(0)


def main() -> None:
    path, kind = sys.argv[1:3]
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    signal.signal(signal.SIGTERM, terminate)
    unhandled = signal.SIG_IGN if kind == "deaf" else signal.SIG_DFL
    signal.signal(signal.SIGUSR2, unhandled)
    signal.signal(signal.SIGHUP, reloaded if kind == "v010" else unhandled)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    print("ready", flush=True)
    wait_for_signals()


if __name__ == "__main__":
    main()
