"""A pidfile whose ``__enter__`` ends the daemon: "another instance runs, nothing to do".

Usage: ``pep3143_quiet_exit.py HOW DIR``. HOW is ``none`` (``sys.exit()``), a
number N (``sys.exit(N)``), ``text`` (``sys.exit("another instance runs")``)
``hard`` (``os._exit(0)``) or ``interrupt`` (a SIGINT to itself, which
Python's default handler turns into ``KeyboardInterrupt``). The daemon writes
its pid to ``DIR/entered`` first.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from aiodaemon import pep3143

HOW, DIR = sys.argv[1], Path(sys.argv[2])


class EndingLock:
    """A lockfile-protocol pidfile that decides no daemon should run."""

    def __enter__(self) -> EndingLock:
        (DIR / "entered.tmp").write_text(f"{os.getpid()}\n")
        (DIR / "entered.tmp").rename(DIR / "entered")
        if HOW == "hard":
            os._exit(0)
        if HOW == "interrupt":
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(60)  # not reached: the handler raises as soon as kill() returns
        if HOW == "text":
            sys.exit("another instance runs")
        sys.exit(None if HOW == "none" else int(HOW))

    def __exit__(self, *exc_info: object) -> None:
        """Nothing was taken."""


with pep3143.DaemonContext(pidfile=EndingLock(), detach_process=True):
    (DIR / "opened").write_text("the daemon ran\n")
