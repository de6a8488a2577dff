"""The kit's files, in a directory the daemon's account may write: never followed, never waited on.

With ``user=`` the kit hands its temporary directory to the account the
daemon drops to, so that the dropped daemon can reopen its log there; that
account (compromised, DESIGN section 6) may then replace any entry in it. A
symlink to root's files would have the kit, run by root, read them into
``stderr`` or ``records()`` (and a test's failure report), or truncate them
when it created its stderr file; a FIFO would hang the test run. So the
kit's own stdout and stderr files are created before the hand-over and its
stderr is read through the descriptor it keeps, and every file the kit reads
by path (the log, the pidfile, a ``stderr=`` file) is opened without
following a symlink or waiting on a FIFO, and read only if it is a regular
file with one link, as the daemon itself requires of the files it writes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._errors import LaunchError

__all__ = ["create_output", "open_regular", "read_whole"]

_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def create_output(path: Path) -> int:
    """Create ``path``, which must not exist yet; a read-write descriptor of it.

    Raises:
        OSError: the file exists, or cannot be created.
    """
    return os.open(path, _CREATE, 0o666)


def read_whole(fd: int) -> bytes:
    """Everything in the file open as ``fd``, from its start (the offset is left alone)."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def open_regular(path: Path) -> int:
    """A read-only descriptor of ``path``, only if it is a regular file with one link.

    Raises:
        FileNotFoundError: nothing is at ``path``.
        LaunchError: something else is there (a symlink, a FIFO, a hard link
            to another file), or it cannot be opened; nothing was read.
    """
    try:
        fd = os.open(path, _READ)
    except FileNotFoundError:
        raise
    except OSError as exc:
        what = "is a symlink" if _is_symlink(path) else f"cannot be opened: {exc.strerror}"
        raise LaunchError(f"{path} {what}; not read") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "has more than one link" if stat.S_ISREG(st.st_mode) else "is not a regular file"
        raise LaunchError(f"{path} {what}; not read")
    return fd


def _is_symlink(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False
