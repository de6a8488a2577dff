"""``DaemonContext.open()`` under an ``RLIMIT_NPROC``: ``pep3143_fork_refused.py DIR UID NPROC``.

Started as root, it loads what ``open()`` will import (the interpreter may lie
under /root, closed to other users), becomes UID (a uid no other process
uses, so the limit counts this program's processes alone), limits it to NPROC
processes, then opens a detached context with a ``PidFile`` in DIR. NPROC 1
refuses the first fork (``open()`` raises in this process: printed, as a
python-daemon program catching ``daemon.daemon.DaemonProcessDetachError``
would), 2 the second one (in the first child: this process exits 1).
"""

from __future__ import annotations

import os
import pathlib  # noqa: F401
import resource
import sys

# What PidFile.lock() and the fork import on their way.
import aiodaemon._prefork._pep3143_pidfile
import aiodaemon._prefork._pidfile
import aiodaemon._prefork._pidfile_status
import aiodaemon._prefork._procfs
import aiodaemon._prefork._readiness  # noqa: F401
from aiodaemon import pep3143 as daemon

directory, uid, nproc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(uid, uid, uid)
resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
context = daemon.DaemonContext(
    detach_process=True,
    working_directory=directory,
    pidfile=daemon.PidFile(os.path.join(directory, "app.pid")),
)
try:
    context.open()
except daemon.daemon.DaemonProcessDetachError as exc:
    print(f"DaemonProcessDetachError: {exc}")
