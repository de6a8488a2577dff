"""Acquire phase: bind the control socket file, safely, before any privilege drop.

The file is created by :func:`._unixbind.bind_unix`, born with mode 0600
(whatever the umask) and owned by the user the daemon drops to, with nothing
changed by path afterwards: no path is ever followed into someone else's file.

Only ``bind`` happens here. ``listen`` is left to the daemon itself
(:mod:`aiodaemon._run._control_server`): Linux records the peer credentials a client sees
(``SO_PEERCRED``) when ``listen`` is called, and the CLI checks they name the
process holding the pidfile, not the launcher that bound the file.
Never imports asyncio.
"""

from __future__ import annotations

import os
import socket
import stat

from ..exceptions import StartupError
from ._sharedfile import unlink_if

__all__ = ["ControlSocket", "open_control_socket"]


class ControlSocket:
    """The bound (not yet listening) control socket and the file we created for it."""

    def __init__(self, path: str, sock: socket.socket, identity: tuple[int, int] | None) -> None:
        self.path = path
        #: the file's path as this process sees it: changed by a chroot, None when outside it.
        self.visible_path: str | None = path
        self.sock = sock
        # (st_dev, st_ino) of our file: only that inode is ever unlinked (None: not ours).
        self._identity: tuple[int, int] | None = identity

    @property
    def identity(self) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the file this process will remove at exit, if any."""
        return self._identity

    def enter_chroot(self, root: str) -> None:
        """Remove the file at exit by its path inside ``root``; call just before the chroot."""
        from ._jailpath import seen_from

        self.visible_path = seen_from(root, self.path)

    def own_file(self, identity: tuple[int, int]) -> None:
        """Remove the file ``identity`` names at exit (an upgrade's successor, once in charge)."""
        self._identity = identity

    def disown_file(self) -> None:
        """Leave the file at exit: an upgrade's successor serves on it now."""
        self._identity = None

    @classmethod
    def adopt(cls, path: str, fd: int) -> ControlSocket:
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
            raise StartupError(f"control socket {path}: {exc.strerror or exc}") from exc
        except BaseException:
            sock.detach()
            raise
        sock.set_inheritable(False)
        return cls(path, sock, (st.st_dev, st.st_ino))

    def __enter__(self) -> ControlSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fileno(self) -> int:
        """The socket's descriptor (kept open across the detach)."""
        return self.sock.fileno()

    def leave_to_daemon(self) -> None:
        """Close the launcher's copy; :meth:`close` still removes the file by its identity."""
        try:  # noqa: SIM105 (see close)
            self.sock.close()
        except OSError:
            pass

    def close(self, *, unlink: bool = True) -> None:
        """Close the socket and remove its file if the file is still the one we bound.

        Best effort after a privilege drop: a daemon that may no longer remove
        the file leaves a dead socket, which the next start replaces.
        """
        # try/except, not contextlib: the CLI's client imports this module.
        try:  # noqa: SIM105
            self.sock.close()
        except OSError:
            pass
        if unlink and self._identity is not None and self.visible_path is not None:
            identity = self._identity
            try:  # noqa: SIM105
                unlink_if(self.visible_path, lambda st: (st.st_dev, st.st_ino) == identity)
            except OSError:
                pass
        self._identity = None


def open_control_socket(
    path: str, uid: int | None, gid: int | None, *, given: bool = False
) -> ControlSocket:
    """Bind a unix stream socket at ``path``, mode 0600, owned by ``uid``/``gid``.

    A stale socket file (nobody accepts on it: its daemon was killed) is
    replaced; a live one, or anything that is not a socket, is refused.

    Args:
        given: the path is the ``control`` option's, not the pidfile's path +
            ``.ctl``: a refusal names the option (the CLI's ``--control``), as
            ``listen`` and ``health`` refusals name theirs.

    Raises:
        StartupError: naming the path and the reason.
    """
    # Here, not at the top: the CLI's client imports this module and must start fast.
    from ._unixbind import bind_unix

    what = f"control: cannot bind {path}" if given else f"control socket {path}"
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    except OSError as exc:  # EMFILE: the listeners just bound took the last descriptors
        raise StartupError(f"{what}: {exc.strerror or exc}") from exc
    try:
        identity = bind_unix(sock, path, mode=0o600, owner=(uid, gid))
    except OSError as exc:
        sock.close()
        raise StartupError(f"{what}: {exc.strerror or exc}") from exc
    except BaseException:
        sock.close()
        raise
    return ControlSocket(path, sock, identity)
