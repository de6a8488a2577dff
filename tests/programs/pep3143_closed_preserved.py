"""A daemon keeping a closed fd: ``pep3143_closed_preserved.py MODULE DIR DETACH PIDFILE``.

MODULE is ``daemon`` or ``aiodaemon.pep3143``, DETACH ``yes`` or ``no``,
PIDFILE ``none`` or ``timeout`` (``daemon.pidfile.TimeoutPIDLockFile``, DIR/app.pid).
``files_preserve`` names the two lowest free numbers, closed (``LISTEN_FDS``
descriptors that were not passed, say). The daemon writes them to
DIR/closed and its pid to DIR/ready, then waits for SIGTERM without opening
anything (a wake-up pipe could take a number) and closes the context.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any

MODULE, DIR, DETACH, PIDFILE = sys.argv[1:5]
daemon: Any = importlib.import_module(MODULE)
if MODULE == "daemon":
    importlib.import_module("daemon.pidfile")

# The two lowest free numbers: /dev/null for the stdio took the first, and the
# PidFile's lock the second.
closed = [os.open(os.devnull, os.O_RDONLY) for _ in range(2)]
for fd in closed:
    os.close(fd)
options: dict[str, Any] = {}
if PIDFILE == "timeout":
    options["pidfile"] = daemon.pidfile.TimeoutPIDLockFile(os.path.join(DIR, "app.pid"), 2)
context = daemon.DaemonContext(
    detach_process=DETACH == "yes", working_directory=DIR, files_preserve=closed, **options
)
with context:
    # Taken by sigwait, not by the handler: waiting needs no descriptor then.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    with open("closed", "w") as number:
        number.write(" ".join(map(str, closed)))
    with open("ready.tmp", "w") as ready:
        ready.write(f"{os.getpid()}\n")
    os.rename("ready.tmp", "ready")
    signal.sigwait({signal.SIGTERM})
