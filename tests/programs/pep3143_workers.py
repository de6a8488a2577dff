"""A detached pre-fork daemon with a PidFile: ``pep3143_workers.py DIR``.

The daemon forks two workers with ``os.fork``: one ends at once through
``sys.exit`` (unwinding the ``with`` block and running ``atexit``, as a
worker that returns does), the other waits for signals. The daemon writes
the lingering worker's pid into DIR/worker, then its own into DIR/ready.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aiodaemon import pep3143
from tests.programs.signal_wait import wait_for_signals

DIR = Path(sys.argv[1])

with pep3143.DaemonContext(working_directory=DIR, pidfile=pep3143.PidFile(DIR / "app.pid")):
    quitter = os.fork()
    if quitter == 0:
        sys.exit(0)
    os.waitpid(quitter, 0)
    lingering = os.fork()
    if lingering == 0:
        wait_for_signals()
    (DIR / "worker").write_text(f"{lingering}\n")
    (DIR / "ready.tmp").write_text(f"{os.getpid()}\n")
    os.rename(DIR / "ready.tmp", DIR / "ready")
    wait_for_signals()
