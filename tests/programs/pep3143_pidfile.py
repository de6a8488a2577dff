"""A detached aiodaemon.pep3143 daemon with a PidFile: ``pep3143_pidfile.py SETTINGS``.

SETTINGS is JSON: ``pidfile`` (a path), and optionally ``umask``, ``uid`` and
``gid`` for the ``DaemonContext``. The caller exits 0 once the daemon is up
(its pid in the pidfile), or non-zero with ``open()``'s error; the daemon
waits for SIGTERM.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aiodaemon import pep3143
from tests.programs.signal_wait import wait_for_signals

settings: dict[str, Any] = json.loads(sys.argv[1])
context = pep3143.DaemonContext(
    pidfile=pep3143.PidFile(settings.pop("pidfile")), detach_process=True, **settings
)
with context:
    wait_for_signals()
