"""Threads a detach's fork leaves behind: a warning before the fork.

The fork copies only the thread that calls it. A thread Python started is
refused by ``run()`` (and warned of by ``pep3143``, whose python-daemon
programs may start one); a C library's thread (OpenBLAS under numpy, gRPC)
cannot be refused, as most such programs would never start: it is warned
of, with the remedy (docs/lifecycle.md).
"""

from __future__ import annotations

import os
import sys
import time

from ._messages import say

#: Seconds a task left by a thread just joined gets to end before it is taken
#: for a C library's thread; paid only when one is seen.
_TASK_END_WAIT = 0.1


def warn_unseen_threads(remedy: str) -> None:
    """Warn of threads Python does not know of; ``remedy`` says where to import their library."""
    unseen = _unseen_threads()
    # A thread joined a moment ago (the program's own, an earlier run's
    # backstop) lets go of its kernel task a moment after join() returns:
    # counted then, it was taken for a C library's. Such a task ends at once.
    deadline = time.monotonic() + _TASK_END_WAIT
    while unseen > 0 and time.monotonic() < deadline:
        time.sleep(0.002)
        unseen = _unseen_threads()
    if unseen > 0:
        one = unseen == 1
        threads, it = ("1 thread", "it") if one else (f"{unseen} threads", "they")
        say(
            f"warning: {threads} Python does not know of {'runs' if one else 'run'}"
            " (a C library's, started at its import); the detach's fork leaves"
            f" {'it' if one else 'them'} behind, and the daemon may hang on a lock {it}"
            f" held: import that library {remedy}"
        )


def python_threads() -> list[str]:
    """The names of Python's threads other than the main one (none if threading is unused)."""
    threading = sys.modules.get("threading")
    if threading is None:
        return []
    main = threading.main_thread()
    return [t.name for t in threading.enumerate() if t is not main]


def _unseen_threads() -> int:
    """How many of this process's tasks are no thread of Python's (0 without /proc)."""
    threading = sys.modules.get("threading")
    known = 1 if threading is None else threading.active_count()
    try:
        return len(os.listdir("/proc/self/task")) - known
    except OSError:
        return 0  # no /proc: nothing to tell them by
