"""Take a pidfile and catch lockfile's errors, as python-daemon programs do.

Usage: ``pep3143_lockfile.py LIBRARY WAY PIDFILE TIMEOUT``. LIBRARY is
``python-daemon`` or ``aiodaemon`` (only the import changes); WAY is
``acquire`` (``TimeoutPIDLockFile(PIDFILE, TIMEOUT).acquire()``) or ``open``
(the same pidfile given to ``DaemonContext(detach_process=False).open()``);
TIMEOUT is a number or ``none``. The exit status names what ``except``
caught: 0 nothing, 4 ``lockfile.AlreadyLocked``, 5 ``lockfile.LockTimeout``,
6 ``lockfile.LockFailed`` (python-daemon's stdout is /dev/null after ``open``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import lockfile

LIBRARY, WAY, PIDFILE, TIMEOUT = sys.argv[1:5]

if LIBRARY == "aiodaemon":
    daemon: Any = importlib.import_module("aiodaemon.pep3143")
else:
    daemon = importlib.import_module("daemon")
    importlib.import_module("daemon.pidfile")

pidfile = daemon.pidfile.TimeoutPIDLockFile(PIDFILE, None if TIMEOUT == "none" else float(TIMEOUT))
try:
    if WAY == "acquire":
        pidfile.acquire()
    else:
        daemon.DaemonContext(pidfile=pidfile, detach_process=False).open()
except lockfile.LockTimeout:
    sys.exit(5)
except lockfile.AlreadyLocked:
    sys.exit(4)
except lockfile.LockFailed:
    sys.exit(6)
