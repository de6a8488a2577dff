"""A daemon dropping to nobody, python-daemon's way: ``pep3143_dropped.py PIDFILE READY``.

Run as root; the daemon becomes nobody (65534), writes its pid into READY
(opened before the drop) and waits for SIGTERM.
"""

from __future__ import annotations

import os
import sys

from aiodaemon import pep3143 as daemon
from tests.programs.signal_wait import wait_for_signals

PIDFILE, READY = sys.argv[1:3]


def main() -> None:
    """Open the context as nobody, with the pidfile python-daemon's way."""
    ready = open(READY, "w")  # noqa: SIM115 (written by the daemon)
    context = daemon.DaemonContext(
        uid=65534,
        gid=65534,
        pidfile=daemon.pidfile.TimeoutPIDLockFile(PIDFILE, 2),
        files_preserve=[ready],
    )
    with context:
        ready.write(f"{os.getpid()}\n")
        ready.close()
        wait_for_signals()


if __name__ == "__main__":
    main()
