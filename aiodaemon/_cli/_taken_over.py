"""Whether the daemon ``stop`` waited for handed its pidfile on to an upgrade's new process.

An upgrade that completes while ``stop`` runs (after its look at the pidfile,
before its request lands) leaves ``stop`` waiting for the old daemon, which
exits having handed everything over: the new one serves on. The pidfile's
lock tells them apart from a daemon started afresh since: an ``flock``
belongs to the open file that took it, and ``/proc/locks`` names the process
that took it for as long as any process holds that open file. An upgrade's
new process inherits that very open file, so the lock still names the
process that first took it (the old daemon, its launcher, or the first of a
chain of upgrades); a daemon started afresh takes a lock of its own. Under
``run`` that lock is in its own name, but ``start`` takes it in the launcher
before the fork: named after another process than its holder, as an
inherited one is. Only the taker seen while the old daemon held the lock
(:func:`lock_taker`, read by ``stop`` before it verifies the holder) tells the
two apart; without it, a ``stop`` racing a fresh ``start`` stopped the new
daemon too, "handed over ... (an upgrade)".

Inside a pid namespace (a container) the kernel leaves out of ``/proc/locks``
a lock whose taker it cannot name there: one that has exited (a ``start``'s
launcher, an upgraded daemon), where outside it goes on naming its number.
The holder's session tells then: an upgrade's new process stays in its
parent's (the old daemon's), a daemon started afresh has one of its own
(``setsid``), and no process can join a session it was not born into, so no
other user can forge it (DESIGN section 6); the holder is verified as ever.

Read only when a command meets another holder than the one it asked, and by
``stop`` once up front (before it verifies the holder, so that the lock is the
holder's; a stop waits for an exit anyway): reading
``/proc/locks`` costs ~10 ms of waiting in the kernel, which every ``reload``
paid (half its time) while it looked up front.
"""

from __future__ import annotations

import os

from .._prefork._pidfile_status import read_pidfile
from .._prefork._procfs import stat_field

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["Taker", "inherited", "lock_taker", "taken_over"]


class Taker:
    """Who took the ``flock`` on a pidfile, and the session of its holder then.

    ``pid``: the process that took it; 0 when this pid namespace cannot name it
    (see the module). ``session``: the holder's (``setsid``); None when unseen.
    """

    __slots__ = ("pid", "session")

    def __init__(self, pid: int, session: int | None) -> None:
        self.pid = pid
        self.session = session


def lock_taker(path: StrPath) -> Taker | None:
    """Who took the ``flock`` on ``path``; None if nothing tells."""
    try:
        st = os.stat(path, follow_symlinks=False)
        with open("/proc/locks", "rb") as f:
            table = f.read()
    except OSError:
        return None
    where = b"%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    taker = 0
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF"; waiters show "->".
        if len(fields) >= 6 and fields[1] == b"FLOCK" and fields[5] == where:
            taker = int(fields[4]) if fields[4].isdigit() else 0
            break
    # No line, or pid 0: either no lock, or one whose taker has exited and was
    # never of our pid namespace (a container): its holder's session tells then.
    holder = read_pidfile(path).running_pid
    if holder is None:
        return Taker(taker, None) if taker > 0 else None
    session = stat_field(holder, 3) or None
    if read_pidfile(path).running_pid != holder:
        # Gone since: the session read may be a recycled pid's.
        session = None
    if taker <= 0 and session is None:
        return None
    return Taker(taker, session)


def _same_lock(now: Taker | None, then: Taker) -> bool:
    """Whether ``now`` is still the lock ``then`` described (inherited by an upgrade)."""
    if now is None:
        return False
    if now.pid and then.pid:
        return now.pid == then.pid
    if now.pid:
        # A taker out of sight has exited: it is never seen again.
        return False
    # Its taker exited since, or was never seen: an upgrade's new process stays
    # in its parent's session, a daemon started afresh has one of its own
    # (setsid), and no process can join a session it is not born into.
    return now.session is not None and now.session == then.session


def taken_over(path: StrPath, pid: int, *, taker: Taker | None = None) -> int | None:
    """The process holding ``pid``'s lock on ``path``, if another one does now (its successor).

    Args:
        path: the pidfile.
        pid: the daemon that held it.
        taker: :func:`lock_taker` of ``path``, read while ``pid`` held it: then a
            successor is only a holder of that very lock. Without it, any lock
            taken by another process than its holder counts, a detached
            start's too.
    """
    holder = read_pidfile(path).running_pid
    if holder is None or holder == pid:
        return None
    now = lock_taker(path)
    if taker is not None:
        # The same lock, inherited; a fresh start's launcher took another one.
        return holder if _same_lock(now, taker) else None
    # Held by one process, taken by another: inherited through an upgrade.
    return holder if now is not None and now.pid != holder else None


def inherited(path: StrPath, taker: Taker | None) -> bool:
    """Whether the lock on ``path`` is still the one ``taker`` took: an upgrade's new process.

    Args:
        path: the pidfile, held by another process than the daemon asked.
        taker: :func:`lock_taker` of ``path``, read while that daemon held it.
            None (no ``/proc/locks`` to read): nothing tells a fresh start
            apart, and the holder is taken for the new process, as it was
            before locks were read.
    """
    return taker is None or _same_lock(lock_taker(path), taker)
