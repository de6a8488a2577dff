"""Continue a daemon stopped with SIGSTOP, and its own process group, before it is stopped.

Stopped, a process keeps a SIGTERM (or a stop request) pending and runs none
of its shutdown: only a SIGKILL reaches it. ``stop`` and the launcher's start
timeout both continue it, as systemd continues what it sends KillSignal= to.
Synchronous, no asyncio (the launcher's side uses it).
"""

from __future__ import annotations

import os
import signal

from ._readiness import readable

__all__ = ["continue_stopped", "own_group"]


def own_group(pid: int) -> bool:
    """Whether ``pid`` leads a process group that holds nothing but what it started.

    It leads the group, and its session is its own or has lost its leader: no
    process joins a group from another session, and a session whose leader
    has exited takes no new group from elsewhere (a session id is not given to
    another process while the session lives). The caller checks ``pid`` is
    still the daemon (its pidfd) after this look. ``pid`` 1 is never one:
    ``killpg(1)`` is ``kill(-1)``, every process.
    """
    try:
        if pid <= 1 or os.getpgid(pid) != pid:
            return False
        session = os.getsid(pid)
    except ProcessLookupError:
        return False
    if session == pid:
        return True
    try:
        return os.getsid(session) != session  # its leader is gone (the number reused?)
    except ProcessLookupError:
        return True


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
