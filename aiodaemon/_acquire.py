"""Acquire phase: take everything that may fail or need root, still on the terminal.

The pidfile lock first (so "already running" is the first thing said), then
log targets, stdio files and listening sockets. Whatever fails releases what
was already taken, so a failed start leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from ._config import HEALTH_SOCKET, ListenAddress, Options
from ._control_socket import ControlSocket, open_control_socket
from ._logging import LogTargets, open_log_targets
from ._messages import say
from ._pidfile import Pidfile, acquire_pidfile
from ._safeopen import open_output
from ._sockets import Listeners, open_listeners

__all__ = ["Acquired", "acquire"]


@dataclass(slots=True)
class Acquired:
    """What the launching process holds for the daemon."""

    pidfile: Pidfile | None = None
    logs: LogTargets | None = None
    listeners: Listeners | None = None
    control: ControlSocket | None = None
    stdout: int | None = None
    stderr: int | None = None
    preserved: tuple[int, ...] = field(default=())

    def keep_fds(self) -> list[int]:
        """Descriptors the detach must keep open (stdio files are dup'ed onto 1 and 2)."""
        fds = [*self.preserved]
        if self.pidfile is not None:
            fds.append(self.pidfile.fd)
        if self.logs is not None:
            fds.extend(self.logs.keep_fds())
        if self.listeners is not None:
            fds.extend(self.listeners.keep_fds())
        if self.control is not None:
            fds.append(self.control.fileno())
        return fds

    def release(self, daemon_pid: int | None = None) -> None:
        """Give back everything: after a failed start, in the launcher or the daemon."""
        if self.listeners is not None:
            self.listeners.close()
        if self.control is not None:
            self.control.close()
        if self.logs is not None:
            self.logs.close()
        for fd in (self.stdout, self.stderr):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdout = self.stderr = None
        if self.pidfile is not None:
            self.pidfile.remove(owner=daemon_pid)


def acquire(options: Options) -> Acquired:
    """Take the pidfile lock, open logs and stdio files, bind listeners.

    Raises:
        AlreadyRunningError: the pidfile is locked by a live daemon.
        StartupError: anything else could not be acquired.
    """
    acquired = Acquired(preserved=options.files_preserve)
    identity = options.identity
    # Everything created from here on (pidfile, log and stdio files, socket
    # files) gets its mode from the daemon's umask, not from whatever umask the
    # launching shell had (000 would make a 0777 socket). Restored afterwards:
    # in the foreground the launcher carries on as the daemon and sets it again
    # at the detach step; a failed start must leave the caller as it was.
    launcher_umask = os.umask(options.umask)
    try:
        if options.pidfile is not None:
            acquired.pidfile = acquire_pidfile(options.pidfile)
            if identity is not None:
                acquired.pidfile.chown(identity.uid, identity.gid)
        acquired.logs = open_log_targets(options)
        if identity is not None:
            acquired.logs.chown(identity.uid, identity.gid)
        if options.stdout is not None:
            acquired.stdout = open_output("stdout", options.stdout)
        if options.stderr is not None:
            acquired.stderr = open_output("stderr", options.stderr)
        if options.listen or options.health is not None:
            # Socket files are created owned by the daemon's user: group members
            # may connect to 0660 sockets, and the daemon may remove its own
            # files at exit after the drop (see _unixbind for why not chown).
            owner = (identity.uid, identity.gid) if identity is not None else (None, None)
            acquired.listeners = open_listeners(_sockets_to_open(options), owner=owner)
        if options.control is not None and _control_wanted(options):
            # Bound now, while the directory may still be root-only; given to
            # the user we drop to, so the daemon can answer on it afterwards.
            uid, gid = (identity.uid, identity.gid) if identity is not None else (None, None)
            from pathlib import Path  # only daemons with a control socket need it

            acquired.control = open_control_socket(Path(options.control), uid, gid)
    except BaseException:
        acquired.release()
        raise
    finally:
        os.umask(launcher_umask)
    return acquired


def _control_wanted(options: Options) -> bool:
    """False (with a warning) when the implicit ``<pidfile>.ctl`` cannot be created.

    A pidfile an administrator created in a directory we may not write to
    used to be enough to start: the control socket it implies must not make
    such a start fail. One given explicitly must work, or the start fails.
    """
    assert options.control is not None
    pidfile = options.pidfile
    implicit = pidfile is not None and options.control == pidfile + ".ctl"
    if not implicit or os.access(os.path.dirname(options.control), os.W_OK | os.X_OK):
        return True
    say(
        f"warning: no control socket: cannot create {options.control} (directory not "
        "writable); status and reload fall back to the pidfile and signals"
    )
    return False


def _sockets_to_open(options: Options) -> dict[str, ListenAddress]:
    """``listen=`` plus the health socket: bound (or adopted from systemd) together."""
    sockets = dict(options.listen)
    if options.health is not None:
        sockets[HEALTH_SOCKET] = options.health
    return sockets
