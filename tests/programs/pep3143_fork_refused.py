"""As nobody with RLIMIT_NPROC 1, ``DaemonContext.open()`` cannot fork: ``... DIR``.

Started as root, it loads what ``open()`` will import (the interpreter may lie
under /root, closed to nobody), becomes nobody, then opens a context with a
``PidFile`` in DIR and prints what ``open()`` raised, as a python-daemon
program catching ``daemon.daemon.DaemonProcessDetachError`` would.
"""

from __future__ import annotations

import os
import pathlib  # noqa: F401
import resource
import sys

# What PidFile.lock() and the fork import on their way.
from aiodaemon import pep3143 as daemon

directory = sys.argv[1]
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
# This process already counts for nobody: any fork is one too many.
resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
context = daemon.DaemonContext(
    detach_process=True,
    working_directory=directory,
    pidfile=daemon.PidFile(os.path.join(directory, "app.pid")),
)
try:
    context.open()
except daemon.daemon.DaemonProcessDetachError as exc:
    print(f"DaemonProcessDetachError: {exc}")
