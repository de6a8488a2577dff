"""A ``DaemonContext`` whose ``open()`` fails inside its chroot; the caller reports where it is.

Usage: ``pep3143_failed_jail.py DIR [WORKDIR PIDFILE]``: the jail is
``DIR/jail``, the working directory ``WORKDIR`` (``/missing`` by default, which
the jail does not hold), the pidfile ``PIDFILE`` (``DIR/jail/d.pid``). Prints
the error, then the caller's working directory and whether ``DIR`` (outside
the jail) is visible. Needs root.
"""

from __future__ import annotations

import os
import sys

from aiodaemon import pep3143

DIR = sys.argv[1]
WORKDIR, PIDFILE = sys.argv[2:4] if len(sys.argv) > 2 else ("/missing", "")
context = pep3143.DaemonContext(
    chroot_directory=os.path.join(DIR, "jail"),
    working_directory=WORKDIR,
    pidfile=pep3143.PidFile(PIDFILE or os.path.join(DIR, "jail", "d.pid")),
)
try:
    context.open()
except pep3143.DaemonError as exc:
    print(f"failed: {exc}")
print(f"cwd {os.getcwd()}")
print(f"outside visible {os.path.isdir(DIR)}")
