"""Catch ``daemon.daemon.DaemonOSEnvironmentError``, as gosa's and clacks' daemons do.

Usage: ``pep3143_daemon_module.py LIBRARY`` (``python-daemon`` or
``aiodaemon``, only the import changes). A missing ``working_directory``
makes ``open()`` fail; the program reports it in one line and exits 1.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

if sys.argv[1] == "aiodaemon":
    daemon: Any = importlib.import_module("aiodaemon.pep3143")
else:
    daemon = importlib.import_module("daemon")

try:
    with daemon.DaemonContext(
        working_directory="/nonexistent/dir", detach_process=False, stderr=sys.stderr
    ):
        pass
except daemon.daemon.DaemonOSEnvironmentError as detail:
    print(f"error while daemonizing: {detail}", file=sys.stderr)
    sys.exit(1)
