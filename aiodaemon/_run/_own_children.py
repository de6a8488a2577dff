"""Signal only the daemon's own children, never a process that took a freed pid.

The pids the exit kills come from multiprocessing's and the process pools'
records, which may name a process that has ended and been reaped by someone
else: a ``forkserver`` child is the forkserver's, reaped by it at once, and a
broken pool's workers are reaped by its manager thread, yet both stay in the
records. Such a pid may by then be another user's process, which a root
daemon would kill.

So a pid is signalled only through a pidfd opened *before* checking, in
``/proc/PID/stat``, that its parent is this process or multiprocessing's
forkserver (itself checked to be this process's child): a pid reused before
the pidfd was opened fails the parent check, and a process that takes it after
cannot be reached through that pidfd. Where the kernel has no pidfd (before
Linux 5.3, or a seccomp profile that refuses it), only this process's own
unreaped children are signalled, as ``waitid(WNOWAIT)`` tells them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterable

__all__ = ["OwnChild", "claim_own", "kill_own", "own_pids"]


class OwnChild:
    """A process checked to be the daemon's own child, and the pidfd it was checked through."""

    __slots__ = ("pid", "pidfd")

    def __init__(self, pid: int, pidfd: int | None) -> None:
        self.pid = pid
        #: None where the kernel has no pidfd (the pid is then an unreaped child's).
        self.pidfd = pidfd


def claim_own(pids: Iterable[int]) -> list[OwnChild]:
    """The ``pids`` that are the daemon's own processes now (see the module's docstring).

    Each is held by a pidfd where the kernel has them: pass the list to
    :func:`kill_own`, which closes them. Makes system calls but takes no
    lock, so a signal handler may call it.
    """
    me = os.getpid()
    server = _forkserver(me)
    owned: list[OwnChild] = []
    try:
        for pid in dict.fromkeys(pids):
            if pid <= 0 or pid == me:
                continue
            child = _claim(pid, me, server)
            if child is not None:
                owned.append(child)
    finally:
        if server is not None:
            os.close(server[1])
    return owned


def kill_own(children: list[OwnChild]) -> None:
    """SIGKILL each of ``children`` (from :func:`claim_own`) and close its pidfd."""
    for child in children:
        with contextlib.suppress(OSError):
            if child.pidfd is None:
                os.kill(child.pid, signal.SIGKILL)
            else:
                signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
        if child.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(child.pidfd)


def own_pids(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that are the daemon's own processes now (to name them, not to signal)."""
    owned = claim_own(pids)
    for child in owned:
        if child.pidfd is not None:
            os.close(child.pidfd)
    return [child.pid for child in owned]


def _claim(pid: int, me: int, server: tuple[int, int] | None) -> OwnChild | None:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    except OSError:
        # No pidfd (old kernel, seccomp, no descriptor left): only an unreaped
        # child of ours, whose pid no other process can have. What remains: a
        # thread of ours (a process pool's manager, a multiprocessing join)
        # may reap it between this check and the signal, and the pid be taken
        # in those microseconds. A forkserver's children cannot be checked so:
        # they are left.
        return OwnChild(pid, None) if _unreaped_child(pid) else None
    # Read with the pidfd open: the process read is the one the pidfd holds,
    # or it was gone before, and then the pidfd reaches no one.
    parent = _parent(pid)
    if parent == me or (server is not None and parent == server[0] and _held(server[1])):
        return OwnChild(pid, pidfd)
    os.close(pidfd)
    return None


def _forkserver(me: int) -> tuple[int, int] | None:
    """multiprocessing's forkserver, if it is this process's child: its pid and a pidfd on it."""
    state = getattr(sys.modules.get("multiprocessing.forkserver"), "_forkserver", None)
    pid = getattr(state, "_forkserver_pid", None)
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    if _parent(pid) == me:
        return pid, pidfd
    os.close(pidfd)
    return None


def _held(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` still holds its pid (running, or a zombie).

    Asked after a child's parent was read: if the forkserver held its pid
    then, that parent pid was the forkserver.
    """
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except OSError:
        return False
    return True


def _unreaped_child(pid: int) -> bool:
    """Whether ``pid`` is a child of this process not yet reaped (running, or a zombie)."""
    try:
        # WNOWAIT: a zombie stays one, for whoever reaps it (multiprocessing).
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except OSError:
        return False  # ECHILD: not our child, or reaped already
    return True


def _parent(pid: int) -> int | None:
    """``pid``'s parent pid, from ``/proc/PID/stat`` (None if it cannot be read).

    Not ``_prefork._procfs``: that module is not loaded at every start. The
    command name may hold spaces and parentheses, hence the split at the last ")".
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
