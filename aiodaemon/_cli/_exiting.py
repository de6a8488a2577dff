"""A daemon in its last steps, its pidfile already removed (or emptied): found by its exit mark.

Its process lives on for a moment after the pidfile is gone (the
interpreter's exit), listening on the abstract name :func:`exit_mark` makes
of the pidfile's path (see ``_prefork._exit_mark``). Anybody may listen on
such a name: the listener counts only as the process ``SO_PEERCRED`` names,
running as it listened, as root, as us, as the pidfile's owner or as the
``--user`` given, and holding that very pidfile open for writing, removed
since (``PATH (deleted)``) or emptied at the path: a pidfile (0644) is
writable by root and its daemon's user alone.

"The pidfile's owner" is the owner of the file the process holds, which
whoever made that file chose: it is believed only where nobody else could
have made a file at the path. Not of a process that sees another mount
namespace (a local user may mount a tmpfs of her own over the directory in a
user namespace, and her file then reads as ``PATH (deleted)``), nor of
another user's file in a shared sticky directory (``start``'s rule, see
``_pidfile_trust``). Root, the caller and ``--user`` count anywhere.
Synchronous and light, for the CLI.
"""

from __future__ import annotations

import os
import stat

from .._prefork._exit_mark import canonical_path, exit_mark
from .._prefork._pidfile_status import abstract_listener
from .._prefork._procfs import any_open_file, uids
from .._prefork._readiness import open_pidfd
from .._prefork._sharedfile import is_foreign

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["find_exiting", "open_exiting"]


def find_exiting(path: StrPath, owner: int | None) -> int | None:
    """The pid of the daemon still exiting after it removed or emptied ``path``; None if none.

    Args:
        path: the pidfile, missing or empty and unlocked.
        owner: the daemon's uid, when the caller said (``--user``).
    """
    path = os.fspath(path)
    listener = abstract_listener(exit_mark(path))
    if listener is None:
        return None
    pid, uid = listener
    ids = uids(pid)
    # SO_PEERCRED names the process that listened, gone or not: a recycled pid
    # is another process, which neither runs as it did nor has the file open.
    if ids is None or ids[1] != uid:
        return None
    # The path as /proc names the daemon's descriptor of it, made once for both looks.
    canonical = canonical_path(path)
    held = _writable_pidfile(pid, path, canonical)
    if held is None:
        return None
    if uid in (0, os.geteuid(), owner) or (
        uid == held.st_uid and _made_by_its_owner(pid, canonical, held)
    ):
        return pid
    return None


def _made_by_its_owner(pid: int, canonical: str, held: os.stat_result) -> bool:
    """Whether the file ``pid`` holds as ``canonical`` is its owner's pidfile, never a forgery."""
    try:
        # Unreadable (another user's process, to a caller who is not root): not the same.
        if os.stat(f"/proc/{pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino:
            return False
        directory = os.stat(os.path.dirname(canonical))
    except OSError:
        return False
    return not is_foreign(held, directory, None)


def open_exiting(path: StrPath, owner: int | None) -> tuple[int, int] | None:
    """The daemon :func:`find_exiting` finds, and a pidfd on it; None if none.

    Found again once the pidfd exists: a pid recycled before is not the daemon.
    """
    pid = find_exiting(path, owner)
    if pid is None:
        return None
    pidfd = open_pidfd(pid)
    if pidfd is None:
        return None
    if find_exiting(path, owner) != pid:
        os.close(pidfd)
        return None
    return pid, pidfd


def _writable_pidfile(pid: int, path: str, canonical: str) -> os.stat_result | None:
    """The pidfile ``pid`` has open for writing, removed since or emptied at ``path``; or None.

    ``canonical``: ``path`` as ``/proc`` names it (see ``canonical_path``).
    """
    try:
        at_path: os.stat_result | None = os.stat(path, follow_symlinks=False)
    except OSError:
        at_path = None
    held: list[os.stat_result] = []

    def writable(fd: str) -> bool:
        link = os.readlink(fd)
        if link not in (canonical, canonical + " (deleted)"):
            return False
        st = os.stat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        if link == canonical and (at_path is None or not os.path.samestat(st, at_path)):
            return False  # another file at the path now: not the one it emptied
        with open(fd.replace("/fd/", "/fdinfo/", 1), "rb") as info:
            for line in info:
                if line.startswith(b"flags:"):
                    if int(line.split()[1], 8) & os.O_ACCMODE == os.O_RDONLY:
                        return False
                    held.append(st)
                    return True
        return False

    return held[0] if any_open_file(pid, writable) else None
