"""Continue a daemon stopped with SIGSTOP, and its own process group, before it is stopped.

Stopped, a process keeps a SIGTERM (or a stop request) pending and runs none
of its shutdown: only a SIGKILL reaches it. ``stop`` and the launcher's start
timeout both continue it, as systemd continues what it sends KillSignal= to.
Synchronous, no asyncio (the launcher's side uses it).
"""

from __future__ import annotations

import os
import signal

from ._procfs import pids, stat_field
from ._readiness import readable

__all__ = ["continue_stopped", "own_group"]

#: /proc/PID/stat fields after the command name: the parent, the session, the start time.
_PPID, _SESSION, _STARTED = 1, 3, 19


def own_group(pid: int, leader: int = 0) -> bool:
    """Whether ``pid`` leads a process group that holds nothing but what it started.

    It leads the group, and its session is its own, or has lost its leader
    and holds nothing older than it: no process joins a group from another
    session, a session whose leader has exited takes no new member from
    elsewhere (a session id is not given to another process while the session
    lives), and what is in it already can put its children in the daemon's
    group (a job-control shell its pipeline's: ``set -m; aiodaemon run app |
    gzip`` in a CI runner's session, whose leader is long gone). A detached
    daemon's first parent made the session and exited: all else in it came
    later, from the daemon. ``leader``: the pid of a session leader that runs
    only our code (the launcher's unreaped first child, waiting on the daemon
    it forked), whose session counts as the daemon's own. The caller checks
    ``pid`` is still the daemon (its pidfd) after this look. ``pid`` 1 is
    never one: ``killpg(1)`` is ``kill(-1)``, every process.
    """
    try:
        if pid <= 1 or os.getpgid(pid) != pid:
            return False
        session = os.getsid(pid)
    except ProcessLookupError:
        return False
    if session == 0:
        # Made outside our pid namespace (``unshare --pid`` from a terminal):
        # never the daemon's, whose first fork's setsid made one inside it.
        return False
    if session in (pid, leader):
        return True
    try:
        if os.getsid(session) == session:
            return False  # its leader lives (a shell, a supervisor)
    except ProcessLookupError:
        pass  # gone (its number reused, in another session, is no leader of it)
    return not _older_in_session(pid, session)


def _older_in_session(pid: int, session: int) -> bool:
    """Whether a process of ``session`` started before ``pid`` (or ``pid`` is unknown).

    Start times are clock ticks (10 ms): one of the same tick is older unless
    it descends from ``pid`` (the shell that forked it at once is; a startup
    hook's first subprocess is not).
    """
    started = stat_field(pid, _STARTED)
    if started is None:
        return True
    for other in pids():
        if other == pid or stat_field(other, _SESSION) != session:
            continue
        other_started = stat_field(other, _STARTED)
        if other_started is None:
            continue  # gone meanwhile
        if other_started < started or (other_started == started and not _descends(other, pid)):
            return True
    return False


def _descends(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is a parent of ``pid``'s, or a parent's parent, and so on."""
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        parent = stat_field(pid, _PPID)
        if parent == ancestor:
            return True
        if parent is None:
            return False
        pid = parent
    return False


def continue_stopped(pid: int, pidfd: int, *, group_only: bool = False) -> None:
    """SIGCONT ``pid`` (behind ``pidfd``) and its own group; a refusal is not said.

    Its own group too (a detached daemon's: ``kill -STOP -- -PGID``, a
    Ctrl-Z's): a worker its shutdown hook waits for would hold the stop up.
    ``group_only``: the caller sends the daemon's own SIGCONT (to say a refusal).
    """
    if own_group(pid) and not readable(pidfd, 0):
        try:  # noqa: SIM105 (no contextlib: see _readiness)
            os.killpg(pid, signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass
    if group_only:
        return
    try:  # noqa: SIM105 (no contextlib: see _readiness)
        signal.pidfd_send_signal(pidfd, signal.SIGCONT)
    except (ProcessLookupError, PermissionError):
        pass
