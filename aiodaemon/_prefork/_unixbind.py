"""Create a listening Unix socket file without following anybody's symlink or hard link.

A socket file is created by ``bind()`` at a path, and the directory it lands
in may be writable by someone else: the service account the daemon drops to
(whose directory it often is), or anyone (a sticky ``/tmp``). Whatever is done
*by path* after the ``bind()`` (``chmod``, ``chown``) can be redirected by a
racer who swaps the fresh socket for a symlink or a hard link to a victim file:
root would then hand ``/etc/shadow`` to the service account. So nothing here
changes a file by path after the fact:

- the mode is given at creation: the socket inode's mode (``fchmod`` on the
  fd before ``bind``) minus the umask, with the umask cleared for the ``bind``
  when an explicit mode was asked for;
- the owner is given at creation too: when the daemon will run as another
  user, the ``bind`` happens with that user's effective uid and gid, so the
  file is born theirs. Only when that user cannot create files in the
  directory, and the directory is writable by root alone (so nobody can swap
  the entry), is the file chowned afterwards, through a directory fd and
  without following a symlink.

The ``bind`` itself goes through ``/proc/self/fd`` of the directory walked
safely where another user could swap a directory on the way (see
:func:`bind_unix`); ``getsockname()`` then names that, not the path.
(Binding in a private temporary directory and renaming would also be safe, but
needs a private directory on the same filesystem.)

Stale files are removed only after ``lstat`` shows a socket nobody listens on
and the kernel knows no socket bound to it, and removed through the same
directory fd. Never imports asyncio.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterator

from ._filekind import describe_mode
from ._sharedfile import is_foreign, open_directory, unlink_if
from ._sunpath import SUN_PATH_MAX

__all__ = ["bind_unix", "bind_unix_listener", "unix_refusal", "unlink_if_ours"]

Owner = tuple[int | None, int | None]

#: Seconds a stale-socket probe may wait for a listener whose backlog is full.
_PROBE_TIMEOUT = 1.0


def bind_unix_listener(
    path: str, *, mode: int | None = None, owner: Owner = (None, None)
) -> tuple[socket.socket, tuple[int, int]]:
    """A listening, non-blocking Unix stream socket at ``path``, and its file's (dev, ino).

    Args:
        path: where to create the socket file; a stale socket there is replaced.
        mode: the file's exact mode; None: 0777 minus the current umask.
        owner: (uid, gid) to give the file (None: leave that id as ours).

    Raises:
        OSError: EADDRINUSE for a live socket, EEXIST for a file that is not a
            socket, or why the bind failed.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        identity = bind_unix(sock, path, mode=mode, owner=owner)
        try:
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
        except BaseException:
            unlink_if_ours(path, identity)
            raise
    except BaseException:
        sock.close()
        raise
    return sock, identity


def bind_unix(
    sock: socket.socket, path: str, *, mode: int | None = None, owner: Owner = (None, None)
) -> tuple[int, int]:
    """Bind ``sock`` to a new socket file at ``path`` (no ``listen``); its (dev, ino).

    For a socket that must ``listen`` elsewhere (the control socket listens in
    the daemon, so that ``SO_PEERCRED`` names the daemon, not the launcher).

    The bind goes through ``/proc/self/fd`` of the directory walked safely
    unless nobody but root or us can change a directory on the way: a bind by
    path walks it again, and whoever owns a directory on the way could swap it
    for a symlink in between, so root's socket file would be made in a
    directory of their choosing.
    Without ``/proc`` the path is bound as given, and the file is checked to
    be the one in the walked directory (see ``docs/security.md``).

    Raises:
        OSError: as :func:`bind_unix_listener`.
    """
    parent, name = os.path.split(path)
    # Walked safely: a symlink the daemon's account planted above must not
    # take root's bind, chown or stale-socket removal into another directory.
    dirfd = open_directory(parent or ".")
    try:
        address = _address(dirfd, name, path)
        _remove_stale(dirfd, name, address, owner[0])
        # Bound by the path as given only where nobody else can change a
        # directory on it (see _address): the file at the name is then ours.
        closed = address == path and len(os.fsencode(path)) <= SUN_PATH_MAX
        return _bind(sock, dirfd, name, address, mode, owner, closed=closed)
    finally:
        os.close(dirfd)


def _address(dirfd: int, name: str, path: str) -> str:
    """Where to bind or probe ``name`` in ``dirfd``: through the fd unless nobody could swap."""
    through = f"/proc/self/fd/{dirfd}/{name}"
    fits = len(os.fsencode(path)) <= SUN_PATH_MAX
    if fits and _nobody_else_writes(os.path.dirname(os.path.abspath(path))):
        # The path as given: ``ss -x``, /proc/net/unix and getsockname() show it.
        return path
    if len(os.fsencode(through)) <= SUN_PATH_MAX and os.path.isdir(f"/proc/self/fd/{dirfd}"):
        return through
    if not fits:
        # Either the name does not fit after the prefix (name_too_long says so
        # up front) or /proc is missing: bind() says why it cannot.
        return through
    return path


def _nobody_else_writes(directory: str) -> bool:
    """Whether only root or we can change any directory on the way to ``directory``.

    Then nobody else can swap a component for a symlink between our walk and
    the kernel's. A symlink on the way is not judged: the fd route is taken.
    A sticky directory counts as closed: each component is root's or ours.
    """
    trusted = (0, os.geteuid())
    here = "/"
    for part in ["", *[p for p in directory.split("/") if p]]:
        here = os.path.join(here, part)
        try:
            st = os.lstat(here)
        except OSError:
            return False
        # Sticky (/tmp): others may add entries but not rename ours, and each
        # component below is checked to be ours or root's.
        open_to_others = st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in trusted or open_to_others:
            return False
    return True


def _bind(
    sock: socket.socket,
    dirfd: int,
    name: str,
    path: str,
    mode: int | None,
    owner: Owner,
    *,
    closed: bool,
) -> tuple[int, int]:
    uid, gid = owner
    if uid == os.geteuid():
        uid = None
    if gid == os.getegid():
        gid = None
    if mode is not None:
        # bind() creates the file with the socket inode's mode minus the umask.
        os.fchmod(sock.fileno(), mode)
    later_chown = False
    with _umask(0 if mode is not None else None):
        if uid is None and gid is None:
            sock.bind(path)
        elif _only_root_writes(dirfd):
            # Nobody but root can replace the entry between bind and chown.
            sock.bind(path)
            later_chown = True
        else:
            try:
                with _effective_ids(uid, gid):
                    sock.bind(path)
            except PermissionError:
                raise PermissionError(
                    errno.EACCES,
                    "Permission denied (the directory must be writable by the daemon's "
                    "user, or by root alone)",
                ) from None
    # The inode the kernel gave our socket: only that file is ours to chown or
    # remove. Where nobody else can change a directory on the path (``closed``)
    # the entry at the name is the one bind made (it fails on an existing
    # name), and the sock_diag question (a netlink socket, ~1 ms of every start
    # with a control socket) is not asked.
    bound = None
    if not closed:
        from ._unixdiag import bound_file

        bound = bound_file(sock)
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if bound is None:
            # No sock_diag: trust the entry, as a bind through the fd made it
            # (bind fails on an existing name) and nobody else writes there.
            bound = (st.st_dev, st.st_ino)
        if not stat.S_ISSOCK(st.st_mode) or bound != (st.st_dev, st.st_ino):
            # The path led elsewhere (a directory above was swapped), or another
            # socket sits at the name: not ours to touch.
            shown = describe_mode(st.st_mode) if not stat.S_ISSOCK(st.st_mode) else "another socket"
            raise OSError(errno.EEXIST, f"the socket file's name is {shown} after bind")
        if later_chown:
            os.chown(
                name,
                -1 if uid is None else uid,
                -1 if gid is None else gid,
                dir_fd=dirfd,
                follow_symlinks=False,
            )
    except FileNotFoundError:
        raise OSError(errno.ENOENT, "the socket file was not made in its directory") from None
    except BaseException:
        unlink_at_if(dirfd, name, bound)
        raise
    return st.st_dev, st.st_ino


def unlink_at_if(dirfd: int, name: str, identity: tuple[int, int] | None) -> None:
    """Remove ``name`` in ``dirfd`` if it is the socket file ``identity`` names."""
    with contextlib.suppress(OSError):
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if identity is not None and (st.st_dev, st.st_ino) == identity:
            os.unlink(name, dir_fd=dirfd)


def _only_root_writes(dirfd: int) -> bool:
    st = os.fstat(dirfd)
    return st.st_uid == 0 and not st.st_mode & 0o022


@contextlib.contextmanager
def _umask(mask: int | None) -> Iterator[None]:
    if mask is None:
        yield
        return
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@contextlib.contextmanager
def _effective_ids(uid: int | None, gid: int | None) -> Iterator[None]:
    """Run the block with effective ``uid``/``gid`` (as root), so files are born theirs."""
    saved_uid, saved_gid = os.geteuid(), os.getegid()
    if gid is not None:
        os.setegid(gid)
    try:
        if uid is not None:
            os.seteuid(uid)
        try:
            yield
        finally:
            if uid is not None:
                os.seteuid(saved_uid)
    finally:
        if gid is not None:
            os.setegid(saved_gid)


def unix_refusal(path: str, *, owner: int | None = None) -> OSError | None:
    """Why :func:`bind_unix_listener` would refuse ``path``, as it would say it; None if not.

    The start's own judgment of what lies at the path (a live socket, a file
    that is no socket, another user's socket), made without removing a stale
    socket or creating anything: ``restart`` asks before it stops the daemon,
    which must keep serving when its successor would be refused.

    Args:
        path: where the socket file would be created.
        owner: the uid the daemon drops to, as for :func:`bind_unix_listener`.
    """
    parent, name = os.path.split(path)
    try:
        dirfd = open_directory(parent or ".")
    except OSError as exc:
        return exc
    try:
        _stale(dirfd, name, _address(dirfd, name, path), owner)
    except OSError as exc:
        return exc
    finally:
        os.close(dirfd)
    return None


def _remove_stale(dirfd: int, name: str, path: str, owner: int | None) -> None:
    """Remove a socket file nobody accepts on; refuse a live socket or any other file.

    Raises:
        OSError: as :func:`_stale`, or why the removal was refused.
    """
    st = _stale(dirfd, name, path, owner)
    if st is None:
        return
    # Only the very inode we looked at: if the entry changed since, leave it.
    with contextlib.suppress(FileNotFoundError):
        again = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if os.path.samestat(again, st):
            try:
                os.unlink(name, dir_fd=dirfd)
            except PermissionError as exc:
                raise _explain_refusal(exc, st) from exc


def _stale(dirfd: int, name: str, path: str, owner: int | None) -> os.stat_result | None:
    """The socket file at ``name`` nobody accepts on, ours to remove; None when nothing is there.

    Args:
        dirfd: the directory the socket file is in.
        name: its name there.
        path: the address to probe it at.
        owner: the uid the daemon drops to: its leftover in a shared sticky
            directory is ours to remove, as root's and ours are.

    Raises:
        OSError: EADDRINUSE for a live socket, EEXIST for a file that is not a
            socket, EACCES for another user's socket in a shared sticky directory.
    """
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, f"file exists and is {describe_mode(st.st_mode)}, not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_PROBE_TIMEOUT)
        try:
            probe.connect(path)
        except FileNotFoundError:
            return None
        except ConnectionRefusedError:
            # Nobody listens: a leftover of a process that died without cleaning
            # up, unless a socket is bound there and listens only later (another
            # daemon's control socket, bound at its start, listened on once detached).
            from ._unixdiag import bound_socket_exists

            if bound_socket_exists(st):
                raise _in_use(st) from None
        except TimeoutError:
            # A listener whose backlog stays full: somebody owns it.
            raise _in_use(st) from None
        except OSError as exc:
            # EPROTOTYPE: a live socket of another type; EAGAIN: a listener whose
            # backlog is full. Either way somebody owns it.
            if exc.errno in (errno.EPROTOTYPE, errno.EAGAIN):
                raise _in_use(st) from None
            raise _explain_refusal(exc, st) from exc
        else:
            raise _in_use(st)
    if is_foreign(st, os.fstat(dirfd), owner):
        # Root may remove it (the sticky bit does not bind root), but another
        # user's file is not ours to remove: refused, as their pidfile there is.
        raise _not_ours(st)
    return st


def _in_use(st: os.stat_result) -> OSError:
    """EADDRINUSE for the live socket ``st`` describes, naming its owner when it is not us."""
    reason = os.strerror(errno.EADDRINUSE)
    if st.st_uid != os.geteuid():
        reason += f" (a socket owned by uid {st.st_uid}, another user)"
    return OSError(errno.EADDRINUSE, reason)


def _explain_refusal(exc: OSError, st: os.stat_result) -> OSError:
    """Name the owner of a socket file we may not probe or remove, when it is another user's.

    A user who is not root meets another user's leftover in ``/tmp``: connecting
    to it (mode 0600) or removing it (the sticky bit) is denied, and a bare
    "Permission denied" would point at the directory rather than at the file.
    """
    if not isinstance(exc, PermissionError) or st.st_uid == os.geteuid():
        return exc
    return _not_ours(st)


def _not_ours(st: os.stat_result) -> OSError:
    """EACCES naming the other user whose socket file ``st`` describes."""
    return OSError(
        errno.EACCES, f"is a socket owned by uid {st.st_uid} (another user); refusing to replace it"
    )


def unlink_if_ours(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket file at ``path`` if it is still the inode we created.

    Best effort: after a privilege drop or a chroot the daemon may no longer see
    or be allowed to remove the file; the next start replaces it as stale.
    """
    with contextlib.suppress(OSError):
        unlink_if(path, lambda st: (st.st_dev, st.st_ino) == identity and stat.S_ISSOCK(st.st_mode))
