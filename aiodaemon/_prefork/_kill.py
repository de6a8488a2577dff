"""The SIGKILL at the end of ``aiodaemon stop``: the daemon, and the process group it leads.

A killed daemon runs no code: its fork-pool workers, multiprocessing children
and subprocesses would live on, re-parented to init, holding the ``listen=``
sockets they inherited by fork (the next start: "Address already in use").
So, as systemd's ``KillMode=control-group`` and supervisord's ``killasgroup``
do, the daemon's process group goes with it, but only when that group is the
daemon's own: it leads it (its pgid is its pid), and it leads its session too
or the session's leader is gone (a detached daemon's: the first fork made the
session and exited). Only then can nothing but what the daemon started be in
it. A group led by a daemon that a shell's job control started (`aiodaemon
run app | gzip > log.gz` under `set -m`) also holds the rest of the pipeline,
the user's (killing gzip lost the log, and root's stop would kill root's
gzip for a daemon run as nobody); a foreground daemon in someone else's group
(a script's, a supervisor's) is killed alone too, its children said left.
Never what is not the daemon's (DESIGN.md section 6): the group is looked at
through the daemon's pidfd while it lives, every other member is signalled
through a pidfd of its own, opened before its group is checked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from ._messages import counted
from ._procfs import is_zombie, pids, stat_field
from ._readiness import readable, wait_exited
from ._resume import own_group

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Killed", "kill_daemon", "kill_own_group"]

#: Looks for members forked by one killed meanwhile (see kill_own_group): each
#: round kills what the last one found, so a round finds only their children.
_ROUNDS = 8

#: /proc/PID/stat fields after the command name: the parent pid, the process group,
#: the start time.
_PPID, _PGRP, _STARTED = 1, 2, 19


class Killed:
    """What :func:`kill_daemon` killed and left.

    Attributes:
        exited: the daemon exited within the wait.
        group: how many other processes of the daemon's group were killed;
            None when it leads no group of its own (nothing else was signalled).
        stayed: how many of those still ran at the end of the wait.
        children: how many children the daemon had when it leads no group
            (left running: not its own group); 0 otherwise.
    """

    __slots__ = ("children", "exited", "group", "stayed")

    def __init__(self, *, exited: bool, group: int | None, stayed: int, children: int) -> None:
        self.exited = exited
        self.group = group
        self.stayed = stayed
        self.children = children

    def took(self) -> str:
        """`` and its process group (N more processes)`` when the kill took any; else ""."""
        if not self.group:
            return ""
        return f" and its process group ({counted(self.group, 'more process', 'more processes')})"

    def left(self) -> str:
        """``N child processes of it`` left running (it leads no group of its own); else ""."""
        if self.group is not None or not self.children:
            return ""
        return f"{counted(self.children, 'child process', 'child processes')} of it"

    def stuck(self) -> str:
        """``N processes of its group`` still running after the wait; else ""."""
        if not self.stayed:
            return ""
        return f"{counted(self.stayed, 'process', 'processes')} of its group"


def kill_daemon(pidfd: int, pid: int, wait: float, leader: int = 0) -> Killed:
    """SIGKILL the daemon behind ``pidfd`` and, when it leads it, its process group.

    Waits up to ``wait`` seconds for the daemon and every member killed to be
    gone, so that the ports they held are free once it returns. ``leader``:
    the launcher's session leader still waiting on the daemon (see
    :func:`~._resume.own_group`).

    Raises:
        PermissionError: the daemon may not be signalled by us.
    """
    members = _own_group(pidfd, pid, leader)
    if members is None:
        children = _count(lambda other: stat_field(other, _PPID) == pid and not is_zombie(other))
        _kill(pidfd)
        return Killed(exited=wait_exited(pidfd, wait), group=None, stayed=0, children=children)
    started = stat_field(pid, _STARTED)
    # The whole group at once: a member forking meanwhile cannot escape it,
    # as one signalled after another could. The daemon lived after its pgid
    # was read, so the group is its own (see _own_group).
    with contextlib.suppress(ProcessLookupError):  # gone meanwhile, all of them
        os.killpg(pid, signal.SIGKILL)
    _kill(pidfd)
    deadline = time.monotonic() + wait
    # Forked between our look and the kill (killed by it, waited for here),
    # believed only while the daemon's pid is still its own (alive or not yet
    # reaped): no other group can have that id then.
    later = _members(pid, members)
    if started is None or stat_field(pid, _STARTED) != started:
        _close(later)
        later = {}
    members |= later
    exited = wait_exited(pidfd, wait)
    for member in members.values():
        # One of another user's (set its own uid) stays: counted below if it lives on.
        with contextlib.suppress(PermissionError):
            _kill(member)
    stayed = 0
    for member in members.values():
        if not readable(member, max(0.0, deadline - time.monotonic())):
            stayed += 1
        os.close(member)
    return Killed(exited=exited, group=len(members), stayed=stayed, children=0)


def kill_own_group(leader: int = 0, wait: float = 0.0) -> int | None:
    """From inside the daemon: SIGKILL the rest of the process group it leads, if it is its own.

    The daemon's own forced exit, as :func:`kill_daemon` is the launcher's and
    ``stop``'s: a subprocess it started would otherwise live on, holding the
    ``listen=`` sockets it inherited. Not ``killpg``, which would kill the
    daemon before its exit status is given: each member is signalled through
    a pidfd, and the group is looked at again for what a member forked before
    its kill, a bounded number of times. Only system calls, no lock: a signal
    handler may call it.

    Args:
        leader: as for :func:`~._resume.own_group` (the session leader
            waiting on the daemon's verdict, ours).
        wait: seconds to wait for the members to be gone (their ports free).

    Returns:
        How many were killed; None when the group is not the daemon's own.
    """
    me = os.getpid()
    if not own_group(me, leader):
        return None
    deadline = time.monotonic() + wait
    killed: dict[int, int] = {}
    # We live and lead the group, so its id is ours: every member found is ours.
    for _ in range(_ROUNDS):
        found = _members(me, killed)
        if not found:
            break
        for member in found.values():
            # One of another user's (set its own uid) stays.
            with contextlib.suppress(PermissionError):
                _kill(member)
        killed |= found
    for member in killed.values():
        readable(member, max(0.0, deadline - time.monotonic()))
        os.close(member)
    return len(killed)


def _own_group(pidfd: int, pid: int, leader: int) -> dict[int, int] | None:
    """Pid to pidfd of the other live members of ``pid``'s own group; None if it has none."""
    if not own_group(pid, leader):
        return None
    members = _members(pid, {})
    # Alive after its pgid was read: that pgid was the daemon's (a pid is not
    # reused before its process is reaped), and so are the members found.
    if readable(pidfd, 0):
        _close(members)
        return None
    return members


def _members(pgid: int, known: dict[int, int]) -> dict[int, int]:
    """Pid to pidfd of the live processes of group ``pgid`` (but its leader) not in ``known``."""
    found = {}
    for other in pids():
        if other == pgid or other in known or stat_field(other, _PGRP) != pgid:
            continue
        try:
            member = os.pidfd_open(other)
        except OSError:
            continue  # gone meanwhile
        # Looked at again once the pidfd holds the process (the pid may have
        # been reused meanwhile), and alive then: a zombie is no member to wait
        # for. By getpgid, which reads pids as pidfd_open does: a /proc of
        # another pid namespace (a container given the host's) numbers other
        # processes, and a bystander with a member's number was SIGKILLed.
        if _pgid(other) == pgid and not readable(member, 0):
            found[other] = member
        else:
            os.close(member)
    return found


def _pgid(pid: int) -> int | None:
    """``pid``'s process group, in our pid namespace; None once it is gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _close(members: dict[int, int]) -> None:
    for member in members.values():
        os.close(member)


def _count(matches: Callable[[int], bool]) -> int:
    """How many processes ``matches(pid)`` holds for."""
    return sum(1 for other in pids() if matches(other))


def _kill(pidfd: int) -> None:
    """SIGKILL the process behind ``pidfd``, if it is still there."""
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
