"""Acquire phase: bind the control socket file, safely, before any privilege drop.

The file is created in a private directory (mode 0700, ours) next to its final
path, given mode 0600 and its owner there, where no one can swap it for a
symlink, and only then renamed into place: no path is ever followed into
someone else's file, and the umask never decides the mode.

Only ``bind`` happens here. ``listen`` is left to the daemon itself
(:mod:`._control_server`): Linux records the peer credentials a client sees
(``SO_PEERCRED``) when ``listen`` is called, and the CLI checks they name the
process holding the pidfile, not the launcher that bound the file.
Never imports asyncio.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat

from .exceptions import StartupError

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    # Annotations only: the CLI's client imports this module and must start fast.
    from pathlib import Path

__all__ = ["ControlSocket", "open_control_socket", "unix_address"]

#: sun_path holds 108 bytes with the terminating NUL.
_SUN_PATH_MAX = 107


class ControlSocket:
    """The bound (not yet listening) control socket and the file we created for it."""

    def __init__(self, path: Path, sock: socket.socket, identity: tuple[int, int]) -> None:
        self.path = path
        self.sock = sock
        # (st_dev, st_ino) of our file: only that inode is ever unlinked.
        self._identity: tuple[int, int] | None = identity

    @classmethod
    def adopt(cls, path: Path, fd: int) -> ControlSocket:
        """Take over an inherited control socket (an upgrade's successor).

        The file at ``path`` becomes ours to remove at exit. Serving it with
        :class:`~._control_server.ControlServer` calls ``listen`` again, which
        makes ``SO_PEERCRED`` name this process.

        Raises:
            StartupError: ``fd`` is not a unix stream socket bound to ``path``.
        """
        sock = socket.socket(fileno=fd)
        try:
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise StartupError(f"control socket {path}: fd {fd} is not a unix stream socket")
            st = os.lstat(path)
            if not stat.S_ISSOCK(st.st_mode):
                raise StartupError(f"control socket {path}: not a socket any more")
        except OSError as exc:
            sock.detach()
            raise StartupError(f"control socket {path}: {exc.strerror or exc}") from None
        except BaseException:
            sock.detach()
            raise
        sock.set_inheritable(False)
        return cls(path, sock, (st.st_dev, st.st_ino))

    def fileno(self) -> int:
        """The socket's descriptor (kept open across the detach)."""
        return self.sock.fileno()

    def close(self, *, unlink: bool = True) -> None:
        """Close the socket and remove its file if the file is still the one we bound.

        Best effort after a privilege drop: a daemon that may no longer remove
        the file leaves a dead socket, which the next start replaces.
        """
        with contextlib.suppress(OSError):
            self.sock.close()
        if unlink and self._identity is not None:
            with contextlib.suppress(OSError):
                st = os.lstat(self.path)
                if (st.st_dev, st.st_ino) == self._identity:
                    self.path.unlink()
        self._identity = None


def open_control_socket(path: Path, uid: int | None, gid: int | None) -> ControlSocket:
    """Bind a unix stream socket at ``path``, mode 0600, owned by ``uid``/``gid``.

    A stale socket file (nobody accepts on it: its daemon was killed) is
    replaced; a live one, or anything that is not a socket, is refused.

    Raises:
        StartupError: naming the path and the reason.
    """
    try:
        stale = _check_replaceable(path)
        return _bind(path, uid, gid, stale)
    except OSError as exc:
        raise StartupError(f"control socket {path}: {exc.strerror or exc}") from None


def unix_address(path: str | os.PathLike[str]) -> tuple[str, int | None]:
    """An address ``connect``/``bind`` accept for ``path``, and a directory fd to close after.

    Paths longer than sun_path are reached through ``/proc/self/fd`` of their
    directory, so a deep pidfile directory never makes the control socket fail.
    """
    text = os.fsdecode(path)
    if len(os.fsencode(text)) <= _SUN_PATH_MAX:
        return text, None
    directory, name = os.path.split(text)
    dirfd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{dirfd}/{name}", dirfd


def _check_replaceable(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """Nothing at ``path`` (None), or a dead socket (its identity): anything else stays.

    Raises:
        OSError: EADDRINUSE when something accepts on it, EEXIST when it is not a socket.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, "a file that is not a socket is in the way")
    address, dirfd = unix_address(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(address)
            except (FileNotFoundError, ConnectionRefusedError):
                # A leftover nobody listens on (its daemon was killed): replaceable.
                return st.st_dev, st.st_ino
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EPROTOTYPE, errno.ETIMEDOUT):
                    raise OSError(errno.EADDRINUSE, "in use by another process") from None
                raise
            raise OSError(errno.EADDRINUSE, "in use by another process")
    finally:
        if dirfd is not None:
            os.close(dirfd)


def _bind(
    path: Path, uid: int | None, gid: int | None, stale: tuple[int, int] | None
) -> ControlSocket:
    import tempfile  # here: the CLI's client imports this module and must start fast
    from pathlib import Path

    private = Path(tempfile.mkdtemp(prefix=".ctl-", dir=path.parent))
    staged = private / "s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        address, dirfd = unix_address(staged)
        try:
            sock.bind(address)
        finally:
            if dirfd is not None:
                os.close(dirfd)
        # Safe by path: the directory is 0700 and ours, nobody can swap the file.
        os.chmod(staged, 0o600)
        if uid is not None or gid is not None:
            os.chown(staged, -1 if uid is None else uid, -1 if gid is None else gid)
        st = os.lstat(staged)
        _put_in_place(staged, path, stale)
        sock.set_inheritable(False)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            staged.unlink()
        raise
    finally:
        with contextlib.suppress(OSError):
            private.rmdir()
    return ControlSocket(path, sock, (st.st_dev, st.st_ino))


def _put_in_place(staged: Path, path: Path, stale: tuple[int, int] | None) -> None:
    """Move our file to ``path``, replacing at most the dead socket seen there.

    Raises:
        OSError: EEXIST when something else appeared at ``path`` meanwhile.
    """
    if stale is None:
        # link() never replaces: a file planted since the check makes it fail.
        os.link(staged, path)
        staged.unlink()
        return
    current = os.lstat(path)
    if (current.st_dev, current.st_ino) != stale:
        raise OSError(errno.EEXIST, "the file at the path changed while starting")
    # rename() replaces the path itself, never what a symlink there points at.
    os.rename(staged, path)
