"""``aiodaemon status`` of a stale pidfile removed between its open and its lock check.

As a ``stop`` removing the stale file (it unlinks, then unlocks) does when it
ends just then: an audit hook removes the file at status's first lock check,
the moment the race needs. Usage: ``status_stale_removed.py PIDFILE``.
"""

from __future__ import annotations

import os
import runpy
import sys

PIDFILE = sys.argv[1]
removed = False


def remove_at_the_lock_check(event: str, args: tuple[object, ...]) -> None:
    global removed
    if event == "fcntl.flock" and not removed:
        removed = True
        os.unlink(PIDFILE)


sys.addaudithook(remove_at_the_lock_check)
sys.argv = ["aiodaemon", "status", "--pidfile", PIDFILE]
runpy.run_module("aiodaemon", run_name="__main__", alter_sys=True)
