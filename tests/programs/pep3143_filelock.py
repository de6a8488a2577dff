"""PEP 3143's own example pidfile, ``lockfile.FileLock(PATH)``: its acquire waits for its holder.

Usage: ``pep3143_filelock.py PATH DIR``. The daemon writes its pid to
``DIR/opened`` and exits (releasing the lock).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lockfile

from aiodaemon import pep3143

PATH, DIR = sys.argv[1], Path(sys.argv[2])

with pep3143.DaemonContext(pidfile=lockfile.FileLock(PATH), detach_process=True):
    (DIR / "opened.tmp").write_text(f"{os.getpid()}\n")
    (DIR / "opened.tmp").rename(DIR / "opened")
