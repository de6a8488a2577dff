"""Who holds a pidfile's lock, and whether that process may be its daemon.

An ``flock`` needs no write access: anyone who can open the pidfile for
reading (``0644``, the usual mode, in a directory others may enter, such as
``/run`` itself) can lock it from a process of their own. So a lock proves
a daemon only if it was taken through a descriptor that can write the file,
as every daemon's is (it writes its pid there). Where the holder's
descriptors cannot be seen (another user's process, for a caller not root),
its uids tell instead: each of them must be root, the pidfile's owner (the
daemon's user: the acquire gives it the file) or the caller's. Otherwise
another user could make ``start`` say "already running" with nothing
started, ``status`` say "running", and ``stop`` signal a process of their
choosing (a recycled pid written in the file, or the holder of an emptied
one). Never imports asyncio.
"""

from __future__ import annotations

import os

from ._procfs import uids as _uids

__all__ = ["foreign_holder", "lock_holders"]


def lock_holders(st: os.stat_result) -> set[int]:
    """The pids whose open file holds the ``flock`` of the file ``st`` describes.

    Only the processes we may look into are seen (all of them for root).
    """
    holders = set()
    for name in os.listdir("/proc"):
        if name.isdigit() and _locking_modes(name, st):
            holders.add(int(name))
    return holders


def foreign_holder(pid: int, st: os.stat_result) -> str | None:
    """Why ``pid``, holding the lock of the pidfile ``st`` describes, is not its daemon; or None.

    None too when ``pid`` is gone or /proc does not tell (the callers'
    other checks decide then).
    """
    uids = _uids(pid)
    if uids is None:
        return None
    modes = _locking_modes(str(pid), st)
    if modes:
        if any(mode != os.O_RDONLY for mode in modes):
            return None
        return (
            f"pid {pid} of uid {uids[0]} holds its lock through a descriptor that cannot"
            " write it (anyone who may read a file may lock it); not trusted"
        )
    if modes is not None:
        # Its descriptors are seen, none holds the lock: if another process's
        # does, ``pid`` only has the file open. The file's owner could name a
        # process of root's that reads it (a log follower; the pidfile made a
        # hard link to that log), lock it from a process of its own, and have
        # root's ``stop`` kill that process. (A kernel that shows no locks in
        # fdinfo shows no other holder either: the uids decide as before.)
        others = lock_holders(st) - {pid}
        if others:
            return f"pid {pid} has it open, but pid {min(others)} holds its lock; not trusted"
    strangers = sorted(set(uids) - {0, st.st_uid, os.geteuid()})
    if not strangers:
        return None
    return (
        f"pid {pid} of uid {strangers[0]} holds its lock, but neither root nor the "
        f"pidfile's owner (uid {st.st_uid}) runs it; not trusted"
    )


def _locking_modes(pid: str, st: os.stat_result) -> list[int] | None:
    """The access modes (``O_RDONLY``...) of ``pid``'s descriptors holding the lock on ``st``.

    Empty when it holds none; None when we may not look.
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    modes = []
    for fd in fds:
        try:
            other = os.stat(f"/proc/{pid}/fd/{fd}")
            if not os.path.samestat(other, st):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as f:
                info = f.read()
        except OSError:
            continue
        flags = None
        locked = False
        for line in info.splitlines():
            fields = line.split()
            if fields[:1] == [b"flags:"] and len(fields) > 1:
                flags = int(fields[1], 8)
            # Listed only under descriptors of the open file that took the lock.
            elif (
                fields[:1] == [b"lock:"]
                and b"FLOCK" in fields
                and b"->" not in fields
                and fields[-3].endswith(b":%d" % st.st_ino)
            ):
                locked = True
        if locked and flags is not None:
            modes.append(flags & os.O_ACCMODE)
    return modes
