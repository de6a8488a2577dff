"""Acquire phase: take everything that may fail or need root, still on the terminal.

The pidfile lock first (so "already running" is the first thing said), then
log targets, stdio files and listening sockets. Each resource is a context
manager that owns its release, entered into one :class:`~contextlib.ExitStack`
that travels with :class:`Acquired` through detach, drop and run and is
closed once: by the daemon when it ends (``with acquired:`` in ``_daemon``),
by the launcher after a failed start (:meth:`Acquired.release`), or here,
at once, when acquiring something fails, so a failed start leaves nothing
behind. A new resource: ``acquired.stack.enter_context(...)`` and, if its fd
must survive the detach, a place in :meth:`Acquired.keep_fds`.
"""

from __future__ import annotations

import contextlib
import os
from contextlib import ExitStack
from typing import TYPE_CHECKING

from ..exceptions import StartupError
from ._config import HEALTH_SOCKET, Options
from ._detach import stop_closing_in_forked_children
from ._inherited import raise_descriptor_limit
from ._logsinks import LogTargets, open_log_targets
from ._messages import say

if TYPE_CHECKING:
    from ._addresses import ListenAddress
    from ._control_socket import ControlSocket
    from ._pidfile import Pidfile
    from ._safeopen import CreatedFiles
    from ._sockets import Listeners

__all__ = ["Acquired", "acquire"]


class Acquired:
    """What the launching process holds for the daemon, and the stack that releases it."""

    # A plain class, not a dataclass: defining one costs every start ~0.3 ms.
    __slots__ = (
        "control",
        "created",
        "health",
        "listeners",
        "logs",
        "pidfile",
        "preserved",
        "stack",
        "stderr",
        "stdout",
        "warnings",
    )

    def __init__(self, preserved: tuple[int, ...] = (), *, health: bool = False) -> None:
        self.stack = ExitStack()
        #: whether ``listeners`` holds a ``health=`` socket: without one, a
        #: ``listen=`` entry named like it is the program's, for its children too.
        self.health = health
        self.pidfile: Pidfile | None = None
        self.logs: LogTargets | None = None
        self.listeners: Listeners | None = None
        self.control: ControlSocket | None = None
        self.stdout: int | None = None
        self.stderr: int | None = None
        self.preserved = preserved
        #: what the launcher should tell the terminal although the start goes
        #: on, as errors naming their option (see :func:`._safeopen.full_disk_warning`).
        self.warnings: list[StartupError] = []
        #: the log and stdio files this start created (None: it opened none).
        self.created: CreatedFiles | None = None

    def keep_fds(self) -> list[int]:
        """Descriptors the detach must keep open (stdio files are dup'ed onto 1 and 2)."""
        fds = [*self.preserved, *self.daemon_only_fds()]
        if self.logs is not None:
            fds.extend(self.logs.keep_fds())
        if self.listeners is not None:
            fds.extend(self.listeners.keep_fds())
        return fds

    def daemon_only_fds(self) -> list[int]:
        """What no child the program forks may keep: the pidfile (and its stopping mark),
        control and health sockets.

        The health socket is served by the daemon's own loop alone: kept by a
        child outliving the daemon, probes would hang in its backlog and the
        next start could not bind it.
        """
        fds = []
        if self.pidfile is not None:
            fds.append(self.pidfile.fd)
            mark = self.pidfile.mark_fileno()
            if mark is not None:
                fds.append(mark)
        if self.control is not None:
            fds.append(self.control.fileno())
        if self.health and self.listeners is not None and HEALTH_SOCKET in self.listeners:
            fds.append(self.listeners[HEALTH_SOCKET].fileno())
        return fds

    def leave_to_daemon(self) -> None:
        """In the launcher, just forked: close its copy of every descriptor acquired.

        Held on, the ``listen=`` sockets outlived a daemon that died before it
        was ready by as long as the launcher took to word the verdict: a
        ``start`` racing its stop failed "Address already in use". The
        pidfile's lock stays the daemon's (it belongs to the open file, which
        they share), and what :meth:`refuse` undoes needs no descriptor here:
        each file is removed by path while it is the very one acquired, the
        pidfile under its lock. ``files_preserve`` stays: the program's own.
        """
        if self.pidfile is not None:
            self.pidfile.leave_to_daemon()
        if self.logs is not None:
            self.logs.leave_to_daemon()
        if self.listeners is not None:
            self.listeners.leave_to_daemon()
        if self.control is not None:
            self.control.leave_to_daemon()
        self.close_outputs()

    def release(self, daemon_pid: int | None = None) -> None:
        """Give back everything, once (later calls do nothing).

        Args:
            daemon_pid: in the launcher after a failed start, the daemon whose
                pid the pidfile may hold (it is removed only then).
        """
        if daemon_pid is not None and self.pidfile is not None:
            self.pidfile.owner = daemon_pid
        stop_closing_in_forked_children(self.daemon_only_fds())
        self.stack.close()

    def refuse(self, daemon_pid: int | None = None) -> None:
        """Release everything after the start failed, files it created (still empty) too.

        Args:
            daemon_pid: in the launcher, the daemon that failed (see :meth:`release`),
                gone by then: what it never wrote to is no more than a refused start's.
        """
        self.release(daemon_pid)
        if self.created is not None:
            self.created.remove()

    def __enter__(self) -> Acquired:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def close_outputs(self) -> None:
        """Close the ``stdout``/``stderr`` files not yet handed to fds 1 and 2."""
        for fd in (self.stdout, self.stderr):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdout = self.stderr = None


def acquire(options: Options) -> Acquired:
    """Take the pidfile lock, open logs and stdio files, bind listeners.

    Raises:
        AlreadyRunningError: the pidfile is locked by a live daemon.
        StartupError: anything else could not be acquired.
    """
    raise_descriptor_limit()
    _load_modules(options)
    acquired = Acquired(preserved=options.files_preserve, health=options.health is not None)
    identity = options.identity
    # Everything created from here on (pidfile, log and stdio files, socket
    # files) gets its mode from the daemon's umask, not from whatever umask the
    # launching shell had (000 would make a 0777 socket). Restored afterwards:
    # in the foreground the launcher carries on as the daemon and sets it again
    # at the detach step; a failed start must leave the caller as it was.
    launcher_umask = os.umask(options.umask)
    # The user we drop to: its files from a previous run are ours in a shared
    # sticky directory too (a restarted daemon finds its own log and pidfile).
    user_uid = identity.uid if identity is not None else None
    created: CreatedFiles | None = None
    if options.log_file is not None or options.stdout is not None or options.stderr is not None:
        from ._safeopen import CreatedFiles  # loaded (_load_modules) only for these

        created = CreatedFiles()
    try:
        with ExitStack() as stack:
            # Each resource's module is loaded only by the daemons that use it.
            if options.pidfile is not None:
                from ._pidfile import acquire_pidfile

                acquired.pidfile = stack.enter_context(
                    acquire_pidfile(options.pidfile, owner=user_uid)
                )
                if identity is not None:
                    acquired.pidfile.chown(identity.uid, identity.gid)
            acquired.logs = stack.enter_context(open_log_targets(options, created))
            if identity is not None:
                acquired.logs.chown(identity.uid, identity.gid)
            stack.callback(acquired.close_outputs)
            if options.stdout is not None or options.stderr is not None:
                from ._safeopen import open_output

                if options.stdout is not None:
                    acquired.stdout = open_output(
                        "stdout", options.stdout, owner=user_uid, created=created
                    )
                if options.stderr is not None:
                    acquired.stderr = open_output(
                        "stderr", options.stderr, owner=user_uid, created=created
                    )
            acquired.warnings = _output_warnings(acquired, options, user_uid)
            if options.listen or options.health is not None:
                from ._sockets import open_listeners

                # Socket files are created owned by the daemon's user: group members
                # may connect to 0660 sockets, and the daemon may remove its own
                # files at exit after the drop (see _unixbind for why not chown).
                owner = (identity.uid, identity.gid) if identity is not None else (None, None)
                acquired.listeners = stack.enter_context(
                    open_listeners(_sockets_to_open(options), owner=owner, health=acquired.health)
                )
            if options.control is not None and _control_wanted(options):
                # Bound now, while the directory may still be root-only; given to
                # the user we drop to, so the daemon can answer on it afterwards.
                uid, gid = (identity.uid, identity.gid) if identity is not None else (None, None)
                # Only daemons with a control socket pay for this import.
                from ._control_socket import open_control_socket

                given = options.pidfile is None or options.control != options.pidfile + ".ctl"
                acquired.control = stack.enter_context(
                    open_control_socket(options.control, uid, gid, given=given)
                )
            # Everything is held: from here the stack is the caller's to close.
            acquired.stack = stack.pop_all()
            acquired.created = created
    except BaseException:
        # After the stack closed them: a refused start leaves no empty log
        # or stdio file of its own making behind either.
        if created is not None:
            created.remove()
        raise
    finally:
        os.umask(launcher_umask)
    return acquired


def _load_modules(options: Options) -> None:
    """Import what acquiring for ``options`` needs, before it takes a descriptor.

    An import opens its module's file: one that found the descriptors used up
    by the sockets just bound failed with a traceback (``OSError: Too many
    open files: '.../_control_socket.py'``) where the step itself would have
    said so in one line. Each module is still loaded only by the daemons that
    use it.
    """
    # acquire()'s own lazy imports, and those of the modules it calls.
    if options.log_file is not None or options.stdout is not None or options.stderr is not None:
        from . import _safeopen  # noqa: F401  (by _logsinks)
    if options.pidfile is not None:
        from . import _pidfile  # noqa: F401
    if options.syslog is not None:
        from . import _syslogsink  # noqa: F401
    if options.listen or options.health is not None:
        from . import _sockets  # noqa: F401
    if options.control is not None:
        from . import _control_socket, _unixbind  # noqa: F401  (by _control_socket)


def _output_warnings(acquired: Acquired, options: Options, owner: int | None) -> list[StartupError]:
    """A warning for each output file (log, stdout, stderr) another account owns or that is full."""
    logs = acquired.logs
    outputs = (
        ("log_file", None if logs is None or logs.file is None else logs.file.fd, options.log_file),
        ("stdout", acquired.stdout, options.stdout),
        ("stderr", acquired.stderr, options.stderr),
    )
    warnings: list[StartupError] = []
    for option, fd, path in outputs:
        if fd is not None and path is not None:
            # loaded: it opened the file
            from ._safeopen import foreign_owner_warning, full_disk_warning, size_limit_warning

            for warning in (
                foreign_owner_warning(fd, option, path, owner=owner),
                full_disk_warning(fd, option, path, owner=owner)
                or size_limit_warning(fd, option, path),
            ):
                if warning is not None:
                    warnings.append(warning)
    return warnings


def _control_wanted(options: Options) -> bool:
    """False (with a warning) when the implicit ``<pidfile>.ctl`` cannot be created.

    A pidfile an administrator created in a directory we may not write to
    used to be enough to start: the control socket it implies must not make
    such a start fail. One given explicitly must work, or the start fails.
    """
    assert options.control is not None
    pidfile = options.pidfile
    implicit = pidfile is not None and options.control == pidfile + ".ctl"
    if not implicit:
        return True
    from ._sunpath import name_too_long

    # A pidfile's long generated name must not fail a start that asked for no
    # control socket (refused at configure, naming --control, the user never gave).
    too_long = name_too_long(options.control)
    if too_long is not None:
        why = f"{options.control}, the pidfile's path + .ctl, {too_long}"
    elif not os.access(os.path.dirname(options.control), os.W_OK | os.X_OK):
        why = f"cannot create {options.control} (directory not writable)"
    else:
        return True
    say(
        f"warning: no control socket: {why}; status and reload fall back to the pidfile and signals"
    )
    return False


def _sockets_to_open(options: Options) -> dict[str, ListenAddress]:
    """``listen=`` plus the health socket: bound (or adopted from systemd) together."""
    return options.socket_addresses()
