"""Connect to a syslog Unix socket by path without being led to another user's socket.

A syslog path in a directory others can write (a shared sticky directory
like /tmp) can be replaced at any time: by another user's socket, which
would then receive a root daemon's records, or by a symlink to one, planted
while the real collector restarts. So at every connect, at start and at each
reconnect, the socket file is opened with ``O_PATH | O_NOFOLLOW`` through its
directory and checked on that descriptor (a socket, not planted by another
user, not in a world-writable directory without the sticky bit: the rules of
:mod:`._sharedfile`), and the connect goes through
``/proc/self/fd/N``, which names that very inode: nothing can be swapped
between the check and the connect. Without /proc (a chroot lacking it) the
connect is by path, and the path is checked again afterwards; a swap and a
swap back within that window would go unnoticed (docs/security.md says so).

A symlink is followed only from a directory nobody but its owner can write,
and only if root, we or that owner made it: ``/dev/log`` is a symlink to
``/run/systemd/journal/dev-log`` on systemd hosts. Never imports asyncio:
used in the launching process and by the log writer thread.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from ._sharedfile import ForeignFileError, OpenDirectoryError, open_in_directory

__all__ = ["UntrustedSocketError", "connect_unix", "is_refusal"]

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
#: Symlinks followed at most (the kernel's own limit is 40; /dev/log needs one).
_MAX_LINKS = 8


class UntrustedSocketError(OSError):
    """The syslog path is a symlink that may not be followed, or not a socket."""


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is a refusal to trust the path (not a collector that is down)."""
    return isinstance(exc, UntrustedSocketError | ForeignFileError | OpenDirectoryError)


def connect_unix(path: str, owner: int | None = None) -> tuple[socket.socket, bool]:
    """Connect to the syslog socket at ``path``: datagram, else stream.

    Args:
        path: the socket's path.
        owner: the uid the daemon runs as after dropping privileges, if any
            (its socket is accepted in a shared sticky directory).

    Returns:
        The connected socket, and whether it is a stream socket.

    Raises:
        UntrustedSocketError: a symlink that may not be followed, or not a socket.
        ForeignFileError: another user's socket in a shared sticky directory.
        OpenDirectoryError: a socket in a world-writable directory without the sticky bit.
        OSError: the socket cannot be reached.
    """
    fd, resolved = _open_socket(path, owner)
    try:
        via = _proc_path(fd)
        kind = socket.SOCK_DGRAM
        while True:
            sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
            try:
                sock.connect(via or resolved)
                if via is None:
                    _check_same(fd, resolved, path)
            except OSError as exc:
                sock.close()
                # Some syslog daemons listen on a stream socket (SysLogHandler allows it).
                if exc.errno == errno.EPROTOTYPE and kind == socket.SOCK_DGRAM:
                    kind = socket.SOCK_STREAM
                    continue
                raise
            return sock, kind == socket.SOCK_STREAM
    finally:
        os.close(fd)


def _open_socket(path: str, owner: int | None) -> tuple[int, str]:
    """An ``O_PATH`` descriptor of the trusted socket at ``path``, and its path."""
    current = path
    for _ in range(_MAX_LINKS + 1):
        # Refuses another user's socket in a shared sticky directory, and any
        # socket in a world-writable one without the sticky bit: there anyone
        # may have replaced the collector's socket with their own.
        fd = open_in_directory(current, _PATH_FLAGS, owner=owner, refuse_open_directory=True)
        try:
            st = os.fstat(fd)
            if stat.S_ISSOCK(st.st_mode):
                return fd, current
            if not stat.S_ISLNK(st.st_mode):
                raise UntrustedSocketError(errno.ENOTSOCK, "is not a socket", path)
            _check_link(st, current, path)
            # The target of this very link (readlinkat on the O_PATH fd), not of the path now.
            target = os.readlink("", dir_fd=fd)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        current = os.path.join(os.path.dirname(current), target)
    raise UntrustedSocketError(errno.ELOOP, "too many symlinks", path)


def _check_link(link: os.stat_result, current: str, path: str) -> None:
    directory = os.stat(os.path.dirname(current) or ".")
    shared = directory.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if shared or link.st_uid not in (0, os.geteuid(), directory.st_uid):
        where = "" if current == path else f" ({current})"
        raise UntrustedSocketError(
            errno.ELOOP,
            f"is a symlink{where} that others could have placed; refusing to follow it",
            path,
        )


def _proc_path(fd: int) -> str | None:
    """``/proc/self/fd/N`` if it leads to ``fd``'s inode (None without a usable /proc)."""
    via = f"/proc/self/fd/{fd}"
    try:
        seen, ours = os.stat(via), os.fstat(fd)
    except OSError:
        return None
    return via if os.path.samestat(seen, ours) else None


def _check_same(fd: int, resolved: str, path: str) -> None:
    """After a connect by path: the socket file must still be the one checked."""
    try:
        now = os.lstat(resolved)
    except OSError:
        now = None
    checked = os.fstat(fd)
    if now is None or not os.path.samestat(now, checked):
        raise UntrustedSocketError(errno.EAGAIN, "was replaced while connecting", path)
