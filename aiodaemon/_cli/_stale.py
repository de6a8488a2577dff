"""What a killed daemon leaves: its pidfile and its socket files, removed safely.

Removal happens under the pidfile's own lock (taken, never waited for): while
we hold it no daemon can be starting on this pidfile, and a daemon binds its
control socket only once it holds that lock, so the socket beside it cannot be
a fresh one. Nothing is followed through a symlink, and a socket is removed
only when it is one, belongs to the pidfile's owner (or to us) and nobody
accepts on it. The daemon's ``listen=`` and ``health`` socket files, which
another daemon may bind as soon as they are gone, are removed only when they
are still the very inodes the daemon said it made (in its answer to ``stop``)
and belong to its user (a daemon taken over may name any file), looked up and
unlinked through one descriptor of their directory.
Synchronous and light, for the CLI: no asyncio.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat

from .._prefork._pidfile import parse_pid, read_pid_text
from .._prefork._sharedfile import open_directory, unlink_if
from .._prefork._sunpath import SUN_PATH_MAX, unix_address

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["StaleRemoval", "remove_stale", "remove_stale_control"]

#: Seconds a connect may take before the socket counts as served (a full backlog).
_CONNECT_TIMEOUT = 1.0


class StaleRemoval:
    """What :func:`remove_stale` removed."""

    __slots__ = ("control", "pidfile", "sockets")

    def __init__(self, pidfile: bool, control: bool, sockets: Sequence[str] = ()) -> None:
        self.pidfile = pidfile
        self.control = control
        #: the paths of the other socket files removed.
        self.sockets = list(sockets)


def remove_stale(
    path: StrPath,
    pid: int | None,
    *,
    control: StrPath | None = None,
    sockets: Mapping[str, tuple[int, int]] | None = None,
    owner: int | None = None,
) -> StaleRemoval:
    """Unlink the pidfile ``path`` if nobody holds its lock and it still names ``pid``.

    An emptied file counts as naming any pid (a daemon empties it when it may
    not unlink it); a file holding anything else is not ours and is left.
    ``control``, the socket beside it, goes with it when it is stale (see the
    module's rules), and so does each of ``sockets`` (path -> (st_dev,
    st_ino), as the daemon ``pid`` told them) that is still that inode, owned
    by ``owner`` (the daemon's uid; None: by us), with nobody accepting on it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return StaleRemoval(False, False)
    try:
        # Taking the lock first means a daemon starting right now cannot lose
        # its fresh pidfile (or its control socket) to us.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        st = os.fstat(fd)
        current = os.stat(path, follow_symlinks=False)
        data = read_pid_text(fd)
        if not os.path.samestat(st, current) or not stat.S_ISREG(st.st_mode):
            return StaleRemoval(False, False)
        if not _names(data, pid):
            return StaleRemoval(False, False)
        removed_control = control is not None and _remove_socket(control, {st.st_uid, os.geteuid()})
        # The daemon's word alone names these files: one its account took over
        # could name another's socket, which only the daemon's uid rules out.
        owners = {os.geteuid()} if owner is None else {owner}
        removed = [
            socket_path
            for socket_path, inode in (sockets or {}).items()
            if _remove_socket(socket_path, owners, inode)
        ]
        # Through the directory's descriptor: one swapped for a symlink since the
        # checks (by an account owning a directory above) is not ours to unlink in.
        gone = unlink_if(os.fspath(path), lambda now: os.path.samestat(now, st))
        return StaleRemoval(gone, removed_control, removed)
    except OSError:
        # Locked again by a new daemon, or not ours to remove: leave it.
        return StaleRemoval(False, False)
    finally:
        os.close(fd)


def remove_stale_control(control: StrPath, pidfile: StrPath, owner: int | None) -> bool:
    """Unlink ``control`` if it is a stale socket of ``owner``'s (or ours), no pidfile beside it.

    For a daemon that removed its pidfile at its exit but served no control
    socket (aiodaemon 0.1.0, started on the pidfile of a daemon SIGKILLed
    before it): the socket file is that earlier daemon's leftover. Without a
    pidfile there is no lock to hold; a daemon starting now creates and locks
    its pidfile before it binds its control socket, so the pidfile's absence,
    looked at again just before the unlink, stands for the lock.
    """
    if os.path.lexists(pidfile):
        return False
    owners = {os.geteuid()} if owner is None else {owner, os.geteuid()}
    return _remove_socket(control, owners, unless=lambda: os.path.lexists(pidfile))


def _names(data: bytes, pid: int | None) -> bool:
    """Whether a pidfile holding ``data`` is the stale file of ``pid``."""
    # Read as `status` read it (``00123`` names 123), not compared as text.
    return not data.strip() or (pid is not None and parse_pid(data) == pid)


def _remove_socket(
    path: StrPath,
    owners: set[int],
    inode: tuple[int, int] | None = None,
    *,
    unless: Callable[[], bool] | None = None,
) -> bool:
    """Unlink the socket at ``path`` if it is one of ``owners``' and nobody accepts on it.

    ``inode`` (st_dev, st_ino): only if it is still that very file.
    ``unless``: asked last, before the unlink; True leaves the file. Looked up,
    checked again once the connection was refused, and unlinked through one
    descriptor of its directory: a directory its account controls cannot be
    swapped for a symlink in between, to have another file of that name
    removed, nor the socket for a new one bound there meanwhile.
    """
    directory, name = os.path.split(os.fsdecode(path))
    try:
        dirfd = open_directory(directory or ".")
    except OSError:
        return False
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if (
            (inode is not None and (st.st_dev, st.st_ino) != inode)
            or not stat.S_ISSOCK(st.st_mode)
            or st.st_uid not in owners
        ):
            return False
        # The inode alone does not say its daemon was the only listener: a
        # process it forked may still accept on the socket.
        address = f"/proc/self/fd/{dirfd}/{name}"
        if not _refused(address if len(os.fsencode(address)) <= SUN_PATH_MAX else path):
            return False
        from .._prefork._unixdiag import bound_socket_exists

        if bound_socket_exists(st):
            # Bound by a daemon that listens only once detached: not stale.
            return False
        if not os.path.samestat(os.stat(name, dir_fd=dirfd, follow_symlinks=False), st):
            return False
        if unless is not None and unless():
            return False
        os.unlink(name, dir_fd=dirfd)
    except OSError:
        return False
    finally:
        os.close(dirfd)
    return True


def _refused(path: StrPath) -> bool:
    """Whether connecting to the socket at ``path`` is refused (nobody listens on it)."""
    address, dirfd = unix_address(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(_CONNECT_TIMEOUT)
            try:
                sock.connect(address)
            except ConnectionRefusedError:
                return True
            except OSError:
                return False  # busy, forbidden or gone: not ours to judge
            return False
    finally:
        if dirfd is not None:
            os.close(dirfd)
