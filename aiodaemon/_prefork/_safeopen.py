"""Open the files the daemon writes to without being redirected into someone else's file.

Every file the daemon appends to (``log_file``, ``stdout``, ``stderr``) lies in a
directory that somebody else may be able to write: a sticky ``/tmp``, or a log
directory owned by the service account the daemon drops to. Whoever can write
the directory can plant a symlink, a FIFO or a hard link at the path. So the
path is opened without following a symlink, without blocking on a FIFO, and
what was opened is checked through the descriptor (never by path again):
only a regular file with a single link is written to, and not one another
user planted in a shared sticky directory (:mod:`._sharedfile`). Used at
start (as root, in the launching process) and at every reopen (SIGUSR1,
SIGHUP) alike.
Never imports asyncio: it runs before the fork too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat

from ..exceptions import StartupError
from ._filekind import describe_mode
from ._sharedfile import open_in_directory, unlink_if

__all__ = [
    "CreatedFiles",
    "UnsafeFileError",
    "foreign_owner_warning",
    "full_disk_warning",
    "open_append",
    "open_output",
    "size_limit_warning",
    "verify_regular",
]

# O_NOFOLLOW: a symlink at the path (even a dangling one, which O_CREAT would
# otherwise create at the attacker's chosen target) fails with ELOOP.
# O_NONBLOCK: a FIFO without a reader would hang the open forever; it fails
# with ENXIO instead, and a FIFO with a reader is refused by the type check.
# O_NOCTTY: a terminal device must never become our controlling terminal.
_APPEND_FLAGS = (
    os.O_WRONLY
    | os.O_APPEND
    | os.O_CREAT
    | os.O_CLOEXEC
    | os.O_NOCTTY
    | os.O_NOFOLLOW
    | os.O_NONBLOCK
)


class UnsafeFileError(OSError):
    """The path names something the daemon must not write to (symlink, FIFO, hard link...)."""


def verify_regular(fd: int, path: str | os.PathLike[str]) -> os.stat_result:
    """Check that ``fd`` is a regular file with one link, and return its ``fstat``.

    A second link means the inode is also reachable under another name, maybe
    one the daemon must never write (a hard link planted to ``/etc/shadow`` on a
    filesystem without ``fs.protected_hardlinks``).

    Raises:
        UnsafeFileError: not a regular file, or hard-linked elsewhere.
    """
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        kind = describe_mode(st.st_mode)
        raise UnsafeFileError(errno.EINVAL, f"is {kind}, not a regular file", str(path))
    if st.st_nlink > 1:
        raise UnsafeFileError(
            errno.EMLINK,
            f"has {st.st_nlink} hard links; refusing to write a file linked elsewhere",
            str(path),
        )
    return st


class CreatedFiles:
    """The files a start created, removed again if the start fails before it ends.

    A start refused in the acquire phase (a port in use, an unreachable
    syslog) must leave nothing behind: not the empty log or stdout file it
    created on its way either. Only a file still ours is removed: the same
    inode (never a file put at the path since), still empty.
    """

    def __init__(self) -> None:
        self._files: list[tuple[str, int, int]] = []

    def add(self, path: str | os.PathLike[str], st: os.stat_result) -> None:
        """Note that this start created ``path``, the file ``st`` describes."""
        self._files.append((os.fspath(path), st.st_dev, st.st_ino))

    def remove(self) -> None:
        """Remove each noted file that is still the one created, and empty (best effort)."""
        for path, dev, ino in self._files:

            def ours(st: os.stat_result, dev: int = dev, ino: int = ino) -> bool:
                same = stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == (dev, ino)
                return same and st.st_size == 0

            with contextlib.suppress(OSError):
                unlink_if(path, ours)
        self._files.clear()


def open_append(
    path: str | os.PathLike[str],
    mode: int = 0o666,
    *,
    owner: int | None = None,
    created: CreatedFiles | None = None,
) -> int:
    """Open (or create, with ``mode`` minus the umask) a regular file for appending.

    Returns a blocking, close-on-exec descriptor.

    Args:
        path: the file.
        mode: for a created file.
        owner: the uid the daemon drops to: its file in a shared sticky
            directory is accepted (see :func:`._sharedfile.open_in_directory`).
        created: where to note the file if this open created it.

    Raises:
        UnsafeFileError: the path is a symlink (dangling or not), a FIFO, a
            socket, a device or a hard-linked file.
        ForeignFileError: another user's file in a shared sticky directory.
        OSError: the file cannot be opened for another reason (``strerror`` says why).
    """
    fd = None
    try:
        if created is not None:
            # O_EXCL first: only an open that created the file knows it is ours
            # to remove (a symlink there fails with EEXIST too, then ELOOP below).
            with contextlib.suppress(FileExistsError):
                fd = _open(path, _APPEND_FLAGS | os.O_EXCL, mode, owner)
        new = fd is not None
        if fd is None:
            fd = _open(path, _APPEND_FLAGS, mode, owner)
    except OSError as exc:
        raise _explain(exc, path) from exc
    try:
        st = verify_regular(fd, path)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    if new and created is not None:
        created.add(path, st)
    return fd


def _open(path: str | os.PathLike[str], flags: int, mode: int, owner: int | None) -> int:
    # Also at a reopen: a directory made world-writable since the start lets
    # anyone put their own file at the path, which the daemon would adopt.
    return open_in_directory(path, flags, mode, owner=owner, refuse_open_directory=True)


def _explain(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """Turn ELOOP/ENXIO/EACCES from the open into what is really at the path."""
    # EACCES: in a sticky directory others may write (/tmp), a kernel may refuse
    # O_CREAT on another user's symlink before O_NOFOLLOW does; "Permission
    # denied" would send the reader after the directory's modes, not the link.
    if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EWOULDBLOCK, errno.EACCES):
        return exc
    try:
        st = os.lstat(path)
    except OSError:
        return exc
    if stat.S_ISLNK(st.st_mode):
        return UnsafeFileError(exc.errno, "is a symlink; refusing to follow it", str(path))
    if not stat.S_ISREG(st.st_mode):
        kind = describe_mode(st.st_mode)
        return UnsafeFileError(exc.errno, f"is {kind}, not a regular file", str(path))
    return exc


def open_output(
    option: str,
    path: str | os.PathLike[str],
    *,
    owner: int | None = None,
    created: CreatedFiles | None = None,
) -> int:
    """:func:`open_append` for the launching process: failures become one-line startup errors.

    A file on a full file system is opened all the same (see :func:`full_disk_warning`).

    Raises:
        StartupError: ``cannot open OPTION PATH: reason``.
    """
    try:
        return open_append(path, owner=owner, created=created)
    except OSError as exc:
        raise StartupError(
            f"cannot open {option} {path}: {exc.strerror or exc}", option=option
        ) from exc


def full_disk_warning(
    fd: int, option: str, path: str | os.PathLike[str], *, owner: int | None = None
) -> StartupError | None:
    """What to tell the terminal when ``fd``'s file system is full, else None.

    The start goes on regardless (space may be freed later), but what a
    detached daemon writes there (its records, ``starting`` and ``ready``
    too, in ``log_file`` or, with neither ``log_file`` nor ``syslog``, in the
    ``stderr`` file) would be lost meanwhile, and nobody would be told: the
    failure notices go to the log itself, or to a stderr that is
    ``/dev/null``. Root may still write into the blocks reserved for it; the
    user we drop to may not.

    Returned, never raised, as an error naming ``option`` (``log_file PATH:
    its file system is full; ...``): the launcher words it as it words its
    errors, so the CLI names the flag the user typed.

    Args:
        fd: the opened file.
        option: the keyword option that named it.
        path: its path.
        owner: the uid the daemon drops to, if any.
    """
    try:
        st = os.fstatvfs(fd)
    except OSError:
        return None
    free = st.f_bfree if owner is None and os.geteuid() == 0 else st.f_bavail
    if not st.f_blocks or free:
        return None
    lost = "records are" if option == "log_file" else "output is"
    return StartupError(
        f"{option} {path}: its file system is full; {lost} lost until space is freed",
        option=option,
    )


def foreign_owner_warning(
    fd: int, option: str, path: str | os.PathLike[str], *, owner: int | None = None
) -> StartupError | None:
    """What to tell the terminal when another account owns ``fd``'s file, else None.

    An existing file is appended to whoever owns it (an administrator may have
    set one up for a log shipper), but its owner can read all the daemon writes
    there and rewrite it: say a root daemon's log left owned by the account an
    earlier run dropped to with ``user=``, which DESIGN's threat model says may
    be compromised. The daemon's own files and root's are fine.

    Args:
        fd: the opened file.
        option: the keyword option that named it.
        path: its path.
        owner: the uid the daemon drops to, if any.
    """
    try:
        uid = os.fstat(fd).st_uid
    except OSError:
        return None
    daemon_uid = os.geteuid() if owner is None else owner
    if uid in (0, daemon_uid):
        return None
    import pwd

    def name(uid: int) -> str | None:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return None

    holder = f"{name(uid)} (uid {uid})" if name(uid) else f"uid {uid}"
    return StartupError(
        f"{option} {path} is owned by {holder}, not by the daemon's user"
        f" {name(daemon_uid) or daemon_uid}: that account can read and rewrite what the"
        " daemon writes there (chown the file)",
        option=option,
    )


def size_limit_warning(fd: int, option: str, path: str | os.PathLike[str]) -> StartupError | None:
    """What to tell the terminal when ``fd``'s file has reached ``RLIMIT_FSIZE``, else None.

    Every write past the limit fails (EFBIG; Python ignores SIGXFSZ), so what
    the daemon writes there is lost until the file is rotated, as on a full
    disk (see :func:`full_disk_warning`), and told only in that file.
    """
    import resource  # loaded already (_inherited)

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        size = os.fstat(fd).st_size
    except OSError:
        return None
    if size < limit:
        return None
    lost = "records are" if option == "log_file" else "output is"
    return StartupError(
        f"{option} {path}: it has reached the file-size limit ({limit} bytes, ulimit -f);"
        f" {lost} lost until it is rotated",
        option=option,
    )
