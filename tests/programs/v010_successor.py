"""What an upgrade's new process does when its code uses aiodaemon 0.1.0 (a rollback).

Recorded from commit ed98bda (the CHANGELOG's 0.1.0 cut), which the test
suite cannot build: 0.1.0 knows no hand-off, so it ignores
``AIODAEMON_HANDOFF`` and its channel, opens the pidfile anew, finds it locked
(by the daemon that started it), says so as 0.1.0's ``run()`` does and exits 3.
Takes the pidfile from ``APP_PIDFILE``, like tests/programs/upgrade_app.py
(whose file this one replaces on disk). Plain Python, no aiodaemon.
"""

from __future__ import annotations

import fcntl
import os
import sys


def main() -> None:
    path = os.environ["APP_PIDFILE"]
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = int(os.pread(fd, 32, 0))
        print(f"aiodaemon: already running (pid {pid}, pidfile {path})", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
