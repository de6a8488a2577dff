"""``start`` (and ``run``) beside a daemon suspended (SIGSTOP, a frozen cgroup): said at once.

A suspended daemon answers no question: ``start`` asked its control socket
twice, 2 s each, and then took the silence for "already running", exit 0, of
a daemon perhaps still in its startup hooks; or waited all of its stop budget
for one suspended in its shutdown, which cannot exit before it runs again.
``/proc`` tells a suspension at once, as ``status`` says it, and two marks
that need no answer tell what the daemon was doing: its stopping mark, and
its session leader, which a detached daemon keeps as its parent until it is
ready (see :mod:`.._prefork._readiness`). Synchronous and light, for the CLI.
"""

from __future__ import annotations

from .._prefork._messages import say
from .._prefork._pidfile_status import says_stopping
from .._prefork._procfs import stat_field, suspension
from ._start_after_start import StillStarting
from ._start_after_stop import StillStopping

__all__ = ["judge_suspended"]

#: Fields of /proc/PID/stat after the command name (see ``stat_field``).
_PARENT, _SESSION = 1, 3


def judge_suspended(pidfile: str, pid: int) -> bool:
    """Say what the suspended holder ``pid`` of ``pidfile`` is; False when it is not suspended.

    Returns:
        True once "already running" was said of a ready daemon, suspended.

    Raises:
        StillStopping: it is suspended in its shutdown (said): nothing started.
        StillStarting: it is suspended before it was ready (said): nothing started.
    """
    held = suspension(pid)
    if held is None:
        return False
    if says_stopping(pid):
        say(
            f"pid {pid} is stopping, but {held.state}: it exits only once"
            f" {held.until}; nothing started"
        )
        raise StillStopping(pid)
    if _awaits_readiness(pid):
        say(
            f"pid {pid} is starting, but {held.state}: it can be ready only once"
            f" {held.until}; nothing started"
        )
        raise StillStarting(pid)
    say(f"already running (pid {pid}, pidfile {pidfile}; {held.state})")
    return True


def _awaits_readiness(pid: int) -> bool:
    """Whether ``pid``'s session leader, its parent until it is ready, still waits for it.

    A daemon in the foreground (``run``) has none: its readiness cannot be told.
    """
    parent = stat_field(pid, _PARENT)
    return parent is not None and parent not in (0, 1, pid) and stat_field(pid, _SESSION) == parent
