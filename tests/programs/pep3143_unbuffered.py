"""A detached daemon printing a partial line: ``python -u pep3143_unbuffered.py MODULE DIR``.

MODULE is ``daemon`` or ``aiodaemon.pep3143``. The daemon's stdout is
DIR/out.log; it writes ``progress: `` with no newline (as a progress
indicator does), its pid into DIR/ready, and waits for SIGTERM.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from tests.programs.signal_wait import wait_for_signals

MODULE, DIR = sys.argv[1:3]
daemon: Any = importlib.import_module(MODULE)

log = open(os.path.join(DIR, "out.log"), "a")  # noqa: SIM115 (the daemon's stdout)
with daemon.DaemonContext(working_directory=DIR, stdout=log):
    sys.stdout.write("progress: ")
    with open("ready.tmp", "w") as ready:
        ready.write(f"{os.getpid()}\n")
    os.rename("ready.tmp", "ready")
    wait_for_signals()
