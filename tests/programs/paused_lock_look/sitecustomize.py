"""Pause a command just before its first look at the locks (``/proc/locks``).

Put on ``PYTHONPATH`` by tests whose command must have verified the pidfile's
holder before an event (an upgrade's hand-over) and read whose lock it is
after it: it creates ``$AIODAEMON_TEST_PAUSE/paused``, then waits (30 s at
most) for ``$AIODAEMON_TEST_PAUSE/go``. A slow machine does the same, unasked.
"""

from __future__ import annotations

import os
import sys
import time

_DIRECTORY = os.environ.get("AIODAEMON_TEST_PAUSE")
_paused: list[bool] = []


def _before_open(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or _paused or _DIRECTORY is None or args[0] != "/proc/locks":
        return
    _paused.append(True)
    with open(os.path.join(_DIRECTORY, "paused"), "w"):
        pass
    deadline = time.monotonic() + 30
    go = os.path.join(_DIRECTORY, "go")
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)


if _DIRECTORY is not None:
    sys.addaudithook(_before_open)
