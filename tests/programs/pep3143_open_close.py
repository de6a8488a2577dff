"""Explicit ``open()`` and ``close()`` (no ``with``), run with python-daemon or aiodaemon.pep3143.

Usage: ``pep3143_open_close.py MODULE DIR``. Opens a context with a lockfile
pidfile, closes it, and stays alive (a daemon still) until SIGTERM.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import lockfile.pidlockfile

from tests.programs.signal_wait import wait_for_signals

MODULE, DIR = sys.argv[1:3]
daemon: Any = importlib.import_module(MODULE)


def main() -> None:
    """open(), report, close(), report, wait for SIGTERM."""
    log = open(os.path.join(DIR, "out.log"), "w+")  # noqa: SIM115 (kept for the daemon's life)
    context = daemon.DaemonContext(
        working_directory=DIR,
        umask=0o027,
        pidfile=lockfile.pidlockfile.PIDLockFile(os.path.join(DIR, "service.pid")),
        stdout=log,
        stderr=log,
    )
    print("open before:", context.is_open)
    context.open()
    context.open()  # a second open is a no-op
    print("open after:", context.is_open)
    with open("service.pid") as pidfile:
        print("pidfile holds us:", pidfile.read().strip() == str(os.getpid()))
    context.close()
    context.close()  # a second close is a no-op
    print("closed:", context.is_open, "pidfile exists:", os.path.exists("service.pid"))
    with open("ready.tmp", "w") as ready:
        ready.write(f"{os.getpid()}\n")
    os.rename("ready.tmp", "ready")
    wait_for_signals()


if __name__ == "__main__":
    main()
