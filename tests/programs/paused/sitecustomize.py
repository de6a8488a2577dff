"""Pause a command at its first look at a daemon: a control socket, or the kernel's locks.

Put on ``PYTHONPATH`` by tests whose command must look at the pidfile before an
event (an upgrade's hand-over) and go on after it. Where
``$AIODAEMON_TEST_PAUSE_AT`` says (``control``, the default: just before its
first connection to a control socket, ``*.ctl``; ``locks``: just before its
first look at ``/proc/locks``, which tells whose lock the pidfile holds), it
creates ``$AIODAEMON_TEST_PAUSE/paused``, then waits (30 s at most) for
``$AIODAEMON_TEST_PAUSE/go``. A slow machine does the same, unasked.
"""

from __future__ import annotations

import os
import sys
import time

_DIRECTORY = os.environ.get("AIODAEMON_TEST_PAUSE")
_AT = os.environ.get("AIODAEMON_TEST_PAUSE_AT", "control")
_paused: list[bool] = []


def _is_the_pause_point(event: str, args: tuple[object, ...]) -> bool:
    if _AT == "locks":
        return event == "open" and args[0] == "/proc/locks"
    return event == "socket.connect" and isinstance(args[1], str) and args[1].endswith(".ctl")


def _pause(event: str, args: tuple[object, ...]) -> None:
    if _paused or _DIRECTORY is None or not _is_the_pause_point(event, args):
        return
    _paused.append(True)
    with open(os.path.join(_DIRECTORY, "paused"), "w"):
        pass
    deadline = time.monotonic() + 30
    go = os.path.join(_DIRECTORY, "go")
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)


if _DIRECTORY is not None:
    sys.addaudithook(_pause)
