"""Open a daemon file through its directory, refusing another user's file in a shared one.

A sticky directory writable by others (``/tmp``, a group's spool) lets
anyone create a file at a name the daemon will use later. Opening it with
``O_CREAT`` adopts it: the other user still owns the inode and keeps any
descriptor it opened before, so it reads the logs, forges them, or rewrites
the pid that ``stop`` signals. The kernel refuses such opens with
``fs.protected_regular``, which may be off; this module applies the same rule
itself. The directory is opened first and the file relative to it, so the
directory checked is the one the file was found in, and the owner is read
from the opened descriptor: nothing can be swapped between check and use.
Never imports asyncio: it runs before the fork and at every reopen.
"""

from __future__ import annotations

import errno
import os
import stat

# Not typing.TYPE_CHECKING: pep3143's open() and the control commands load
# this module, and should not pay for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "ForeignFileError",
    "OpenDirectoryError",
    "UnsafePathError",
    "is_foreign",
    "is_open_to_all",
    "is_planted",
    "open_directory",
    "open_in_directory",
    "unlink_if",
]

# O_PATH: only a handle to look the file up in; no read permission on the
# directory is needed, as none was to open the path directly.
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_DIR_FLAGS = _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
#: One component of a walk: a directory or a symlink, neither followed nor read.
_STEP_FLAGS = _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
#: As the kernel's own limit on the symlinks one lookup follows.
_MAX_LINKS = 40


class UnsafePathError(OSError):
    """A step of a path goes from another user's directory or symlink to what they do not own."""


def open_directory(path: str) -> int:
    """An ``O_PATH`` descriptor of the directory ``path``, reached only by safe steps.

    The kernel follows every symlink on the way to a directory. One planted
    in a directory the account a root daemon dropped to owns (its
    ``/srv/app/logs`` made a link to a root-only directory) would lead root's
    create, ``fchown`` or unlink there at the next start, reopen or ``stop``:
    the account would be handed a file of root's, or have one made or removed
    in a directory it cannot write. So the path is walked one component at a
    time, in the spirit of systemd's ``chase()`` with ``CHASE_SAFE``:

    - from a directory owned by anyone but root or us, the walk goes on only
      into what that same user owns (they could have put anything there);
    - a symlink of such a user may lead anywhere on the way, but must end in a
      directory of that user's: it then led nowhere they did not own already.

    Links of root's or our own (``/var/run``), and everything a daemon running
    as that very user meets, are followed as the kernel would follow them.

    Raises:
        UnsafePathError: a step the rules above refuse.
        OSError: a component is missing, is not a directory, or cannot be
            looked up (ELOOP past 40 symlinks).
    """
    trusted = (0, os.geteuid())
    fd = os.open("/" if path.startswith("/") else ".", _DIR_FLAGS)
    try:
        here = os.fstat(fd)
        walked = "/" if path.startswith("/") else ""
        #: every symlink followed, and its path as shown.
        followed: list[tuple[os.stat_result, str]] = []
        todo = path.split("/")[::-1]
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            shown = os.path.join(walked, name)
            step = os.open(name, _STEP_FLAGS, dir_fd=fd)
            try:
                st = os.fstat(step)
                if here.st_uid not in trusted and st.st_uid != here.st_uid:
                    link = followed[-1][1] if followed else ""
                    raise UnsafePathError(errno.EACCES, _refusal(here, st, shown, link), path)
                if stat.S_ISLNK(st.st_mode):
                    if len(followed) >= _MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    # The target of this very link, not of whatever the name holds now.
                    target = os.readlink("", dir_fd=step)
                elif not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            except BaseException:
                os.close(step)
                raise
            if stat.S_ISLNK(st.st_mode):
                os.close(step)
                followed.append((st, shown))
                todo.extend(target.split("/")[::-1])
                if target.startswith("/"):
                    root = os.open("/", _DIR_FLAGS)
                    os.close(fd)
                    fd, here, walked = root, os.fstat(root), "/"
                else:
                    # Its first step is the link's: "../" out of its owner's directory.
                    here = st
                continue
            os.close(fd)
            fd, here, walked = step, st, shown
        final = os.fstat(fd)
        for link_st, link in followed:
            if link_st.st_uid not in trusted and final.st_uid != link_st.st_uid:
                raise UnsafePathError(
                    errno.EACCES, _refusal(link_st, final, walked or ".", link), path
                )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refusal(here: os.stat_result, st: os.stat_result, shown: str, link: str) -> str:
    """Why the walk may not go from ``here`` (a directory, or the link at ``link``) to ``shown``."""
    if stat.S_ISLNK(here.st_mode):
        return (
            f"{link} is a symlink of uid {here.st_uid} leading to {shown}, which is "
            f"uid {st.st_uid}'s; refusing to follow it"
        )
    return (
        f"{shown} is uid {st.st_uid}'s but lies in a directory of uid {here.st_uid}, "
        "who could have put it there; refusing to enter it"
    )


def unlink_if(path: str, still_ours: Callable[[os.stat_result], bool]) -> bool:
    """Unlink ``path`` if ``still_ours`` accepts what is there (its ``lstat``).

    Root removes the daemon's files (its pidfile, sockets, a failed start's
    empty outputs) after the account it dropped to has run, and that account
    may own a directory above the file. Checked by path and then unlinked by
    path, the two lookups could meet two different directories (one swapped
    for a symlink in between), and root would unlink a file of that name
    wherever the symlink points. Both go through one descriptor of the directory.

    Returns:
        Whether the file was removed.

    Raises:
        OSError: the directory or the file cannot be looked up or removed.
    """
    parent, name = os.path.split(path)
    dir_fd = open_directory(parent or ".")
    try:
        if not still_ours(os.stat(name, dir_fd=dir_fd, follow_symlinks=False)):
            return False
        os.unlink(name, dir_fd=dir_fd)
        return True
    finally:
        os.close(dir_fd)


class ForeignFileError(OSError):
    """The file belongs to another user and lies in a shared sticky directory."""


class OpenDirectoryError(OSError):
    """The directory is world-writable without the sticky bit: anyone may replace the file."""


def is_open_to_all(mode: int) -> bool:
    """Whether a directory of ``mode`` (an ``st_mode``) lets anyone replace anyone's files."""
    return bool(mode & stat.S_IWOTH) and not mode & stat.S_ISVTX


def open_in_directory(
    path: str | os.PathLike[str],
    flags: int,
    mode: int = 0o666,
    *,
    owner: int | None = None,
    refuse_open_directory: bool = False,
) -> int:
    """``os.open(path, flags, mode)``, refusing a file or socket planted by another user.

    In a sticky directory writable by its group or by others, an existing
    regular file (or socket, opened with ``O_PATH``) is used only if it
    belongs to root, to us (our euid), to the directory's owner or to
    ``owner``, the user the daemon runs as (its own file from a previous
    run). A file this open created is ours, so ``O_EXCL`` is not needed to
    tell the cases apart.

    Args:
        path: the file.
        flags: for ``os.open``; ``O_NOFOLLOW`` still applies to the last component.
        mode: for a created file (minus the umask).
        owner: the uid the daemon runs as after dropping privileges, if any.
        refuse_open_directory: also refuse a world-writable directory without
            the sticky bit (the pidfile's rule).

    Raises:
        ForeignFileError: another user's file in a shared sticky directory.
        OpenDirectoryError: a world-writable non-sticky directory, when refused.
        OSError: the directory or the file cannot be opened.
    """
    parent, name = os.path.split(os.fspath(path))
    try:
        dir_fd = open_directory(parent or ".")
    except OSError as exc:
        # Reported as the open of the file itself would have been.
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
    try:
        directory = os.fstat(dir_fd)
        if refuse_open_directory and is_open_to_all(directory.st_mode):
            raise OpenDirectoryError(
                errno.EACCES,
                f"directory is world-writable without the sticky bit: {parent or '.'}",
                os.fspath(path),
            )
        try:
            fd = os.open(name, flags, mode, dir_fd=dir_fd)
        except PermissionError as exc:
            reopened = _open_existing(dir_fd, name, flags, directory, owner)
            if reopened is None:
                # Refused by the file's modes (we are not root) or by the kernel's
                # own fs.protected_regular: "Permission denied" would send the
                # reader after the directory, when another user's file is the cause.
                _name_the_owner(dir_fd, name, directory, path, owner, exc)
                raise
            fd = reopened
    finally:
        os.close(dir_fd)
    try:
        _check_owner(os.fstat(fd), directory, path, owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_planted(path: str | os.PathLike[str], owner: int | None = None) -> bool:
    """Whether :func:`open_in_directory` would refuse the file now at ``path``.

    For readers deciding whether to believe a file (``start``'s "already
    running"); a look by path, so never the last word: the open checks its fd.
    """
    parent = os.path.dirname(os.fspath(path)) or "."
    try:
        return is_foreign(os.lstat(path), os.stat(parent), owner)
    except OSError:
        return False


def is_foreign(st: os.stat_result, directory: os.stat_result, owner: int | None) -> bool:
    """The ``fs.protected_regular=2`` rule: another user's file or socket in a shared sticky dir."""
    shared = directory.st_mode & stat.S_ISVTX and directory.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    # A socket too: a planted one would receive what a daemon sends to a
    # syslog path (the kernel's protected_regular leaves sockets alone).
    # Anything else is refused by the callers' type checks.
    kind = stat.S_ISREG(st.st_mode) or stat.S_ISSOCK(st.st_mode)
    return bool(shared and kind) and st.st_uid not in (
        0,
        os.geteuid(),
        directory.st_uid,
        owner,
    )


def _open_existing(
    dir_fd: int, name: str, flags: int, directory: os.stat_result, owner: int | None
) -> int | None:
    """Open without ``O_CREAT`` a file our rule accepts but the kernel's refused; None if not.

    ``fs.protected_regular`` (2 on Debian, 1 where systemd sets it) refuses
    ``O_CREAT`` of an existing file in a sticky directory to anyone, root too,
    who owns neither the file nor the directory: root restarting a ``user=``
    daemon met that user's own log or pidfile from the last run in ``/tmp``
    and could not start. Without ``O_CREAT`` the kernel lets the open through;
    the caller then checks the owner of the very inode opened.
    """
    if not flags & os.O_CREAT:
        return None
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or is_foreign(st, directory, owner):
            return None
        return os.open(name, flags & ~(os.O_CREAT | os.O_EXCL), dir_fd=dir_fd)
    except OSError:
        return None


def _name_the_owner(
    dir_fd: int,
    name: str,
    directory: os.stat_result,
    path: str | os.PathLike[str],
    owner: int | None,
    refused: OSError,
) -> None:
    """Name the other user whose file made the open fail, if one did.

    Raises:
        ForeignFileError: another user's file planted in a shared sticky directory.
        PermissionError: another user's file (root's last run in ``/tmp``, say)
            that our ids may not write, its owner named.
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return
    try:
        _check_owner(st, directory, path, owner)
    except ForeignFileError as exc:
        raise exc from refused
    if stat.S_ISREG(st.st_mode) and st.st_uid != os.geteuid():
        raise PermissionError(
            refused.errno,
            f"{refused.strerror} (owned by uid {st.st_uid}, another user)",
            os.fspath(path),
        ) from refused


def _check_owner(
    st: os.stat_result,
    directory: os.stat_result,
    path: str | os.PathLike[str],
    owner: int | None,
) -> None:
    if not is_foreign(st, directory, owner):
        return
    raise ForeignFileError(
        errno.EACCES,
        f"is owned by uid {st.st_uid} (another user) in a shared sticky directory; "
        "refusing to use it",
        os.fspath(path),
    )
