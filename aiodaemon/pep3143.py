"""PEP 3143's ``DaemonContext``, built on aiodaemon's detach, fd closing, drop and pidfile.

A drop-in for python-daemon (``import daemon``) and pep3143daemon: change the
import, keep the program::

    from aiodaemon import pep3143 as daemon

    with daemon.DaemonContext(pidfile=daemon.PidFile("/run/foo.pid")):
        serve_forever()

Synchronous and light: importing this module and opening a context load
neither asyncio nor structlog. What differs from python-daemon, and why, is in
docs/migrating.md; in short: the umask defaults to 0o022 (the PEP says 0), the
calling process waits until the daemon's ``open()`` has finished and reports
its failure (python-daemon's exits 0 at once), a ``PidFile`` is locked
with ``flock`` before the fork (so "already running" is raised by ``open()``
where the program can see it), and fds are closed with ``close_range``.
"""

from __future__ import annotations

import atexit
import os
import pwd
import signal

from ._prefork import _detach, _privileges
from ._prefork._messages import say
from ._prefork._pep3143_pidfile import (
    check_pidfile_protocol,
    enter_pidfile,
    exit_pidfile,
    inside_chroot,
    pidfile_location,
)
from ._prefork._pidlock import PidFile
from .exceptions import DaemonError, StartupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import FrameType, TracebackType
    from typing import Any, Protocol, TypeAlias

    from ._prefork._readiness import LaunchResult, ReadinessPipe

    class HasFileno(Protocol):
        """A file, socket or anything else with an fd."""

        def fileno(self) -> int: ...

    #: ``None`` (ignore), a method name of the context, or what ``signal.signal`` takes.
    SignalTarget: TypeAlias = (
        "Callable[[int, FrameType | None], Any] | int | signal.Handlers | str | None"
    )

__all__ = [
    "DaemonContext",
    "DaemonError",
    "DaemonOSEnvironmentError",
    "DaemonProcessDetachError",
    "PidFile",
    "is_detach_process_context_required",
    "make_default_signal_map",
    "pidfile",
]


class DaemonOSEnvironmentError(DaemonError, OSError):
    """Setting up the daemon's environment (chroot, cwd, owner, limits, stdio) failed."""


class DaemonProcessDetachError(DaemonError, OSError):
    """Forking away from the calling process failed."""


def make_default_signal_map() -> dict[int, SignalTarget]:
    """The PEP's default map: terminal stop signals ignored, SIGTERM ends the program."""
    return {
        signal.SIGTSTP: None,
        signal.SIGTTIN: None,
        signal.SIGTTOU: None,
        signal.SIGTERM: "terminate",
    }


def is_detach_process_context_required() -> bool:
    """Whether to fork away: False when init, inetd or a service manager already supervises us.

    As python-daemon: started by init (parent pid 1) or inetd (stdin is a
    socket). As aiodaemon's ``detach=None``: ``NOTIFY_SOCKET``, ``LISTEN_FDS``
    or ``INVOCATION_ID`` set (a systemd unit), or being PID 1 (a container).
    """
    return not (os.getppid() == 1 or _detach.stdin_is_socket() or _detach.is_supervised())


class _Pidfile:
    """python-daemon's ``daemon.pidfile`` module: ``TimeoutPIDLockFile(path, timeout)`` works.

    Both names make an aiodaemon ``PidFile`` (flock), not a lockfile.
    """

    TimeoutPIDLockFile = PidFile
    PIDLockFile = PidFile


#: ``daemon.pidfile`` for programs written for python-daemon.
pidfile = _Pidfile

# Reprs, tracebacks and the API reference show the public path.
PidFile.__module__ = __name__


class DaemonContext:
    """The behaviour of a daemon, set up by ``open`` (PEP 3143).

    Every argument is also an attribute that may be changed until ``open()``.

    Args:
        chroot_directory: directory to make the root (``/``), or None.
        working_directory: directory to change to (inside the chroot, if any).
        umask: the umask to set; 0o022 by default (the PEP's default is 0).
        uid: user id to run as; default the real uid (drops a setuid's euid).
        gid: group id to run as; default the real gid.
        initgroups: also take the supplementary groups of ``uid``'s user.
        prevent_core: set ``RLIMIT_CORE`` to 0, soft and hard.
        detach_process: fork away from the caller; None: unless init, inetd
            or a service manager runs us (``is_detach_process_context_required``).
        files_preserve: fds or objects with ``fileno()`` to keep open.
        pidfile: a ``PidFile``, or any object with ``__enter__``/``__exit__``
            (python-daemon's lockfile protocol) or ``acquire``/``release``
            (pep3143daemon's), entered at the end of ``open()``.
        stdin: file object whose fd becomes fd 0; None: ``/dev/null``.
        stdout: file object whose fd becomes fd 1; None: ``/dev/null``.
        stderr: file object whose fd becomes fd 2; None: ``/dev/null``.
        signal_map: signal number → None (ignore), the name of a method of this
            context, or a handler; default ``make_default_signal_map``.
    """

    def __init__(
        self,
        chroot_directory: str | os.PathLike[str] | None = None,
        working_directory: str | os.PathLike[str] = "/",
        umask: int = 0o022,
        uid: int | None = None,
        gid: int | None = None,
        initgroups: bool = False,
        prevent_core: bool = True,
        detach_process: bool | None = None,
        files_preserve: Iterable[int | HasFileno | None] | None = None,
        pidfile: object = None,
        stdin: HasFileno | None = None,
        stdout: HasFileno | None = None,
        stderr: HasFileno | None = None,
        signal_map: Mapping[int, SignalTarget]
        | Mapping[signal.Signals, SignalTarget]
        | None = None,
    ) -> None:
        self.chroot_directory = chroot_directory
        self.working_directory = working_directory
        self.umask = umask
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.initgroups = initgroups
        self.prevent_core = prevent_core
        self.detach_process = (
            is_detach_process_context_required() if detach_process is None else detach_process
        )
        self.files_preserve = files_preserve
        self.pidfile = pidfile
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        # A dict, as programs change it in place (``signal_map[SIGHUP] = f``); the
        # given dict itself, as python-daemon keeps it. Signals keys are ints.
        given: Mapping[Any, SignalTarget] = (
            make_default_signal_map() if signal_map is None else signal_map
        )
        self.signal_map: dict[int, SignalTarget] = given if isinstance(given, dict) else dict(given)
        self._is_open = False

    @property
    def is_open(self) -> bool:
        """Whether ``open`` has run and ``close`` not yet."""
        return self._is_open

    def __enter__(self) -> DaemonContext:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def terminate(self, signal_number: int, stack_frame: FrameType | None) -> None:
        """The default SIGTERM handler: end the program with ``SystemExit``.

        Raises:
            SystemExit: always, saying which signal arrived (exit status 1).
        """
        raise SystemExit(f"Terminating on signal {signal_number!r}")

    def open(self) -> None:
        """Become a daemon; a no-op when already open.

        Everything that can be checked is checked first, then, in the calling
        process: the ``PidFile`` lock, chroot, working directory, umask,
        owner, core limit; then the double fork (the caller exits 0 once this
        method has finished in the daemon, or with the daemon's error); then in
        the daemon: signal handlers, stdio, closing every other fd, the pid.

        Raises:
            AlreadyRunningError: the ``PidFile`` is held by a live process.
            DaemonOSEnvironmentError: chroot, cwd, owner, umask or limit failed.
            DaemonProcessDetachError: the fork failed.
            DaemonError: a stream has no fd, a pidfile object no known protocol,
                or a ``signal_map`` entry is unusable.
            TypeError: a ``files_preserve`` entry is not an fd.
        """
        if self._is_open:
            return
        handlers = self._signal_handlers()
        preserved = self._preserved_fds()
        streams = [_stream_fd(name, getattr(self, name)) for name in ("stdin", "stdout", "stderr")]
        own = self.pidfile if isinstance(self.pidfile, PidFile) else None
        if self.pidfile is not None and own is None:
            check_pidfile_protocol(self.pidfile)
        own_at: str | None = None
        if own is not None:
            # Where the daemon would open a relative path (python-daemon's file).
            try:
                own_at = pidfile_location(own.path, self.working_directory, self.chroot_directory)
            except OSError as exc:
                raise DaemonOSEnvironmentError(exc.errno, _describe(exc)) from exc
        groups = self._groups()
        # /dev/null opened before a chroot, which may have none.
        null = os.open(os.devnull, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            self._lock_and_change_environment(own, own_at, groups)
            pipe = self._detach()
            try:
                for signum, handler in handlers.items():
                    signal.signal(signum, handler)
                _detach.redirect_stdio(
                    null if streams[1] is None else streams[1],
                    null if streams[2] is None else streams[2],
                    null if streams[0] is None else streams[0],
                )
                keep = [*preserved, *(fd for fd in streams if fd is not None)]
                if own is not None and own.held is not None:
                    keep.append(own.held.fd)
                if pipe is not None and pipe.fd is not None:
                    keep.append(pipe.fd)
                _detach.close_inherited_fds(keep)
                null = -1  # closed with the rest (0-2 hold its copies)
                if own is not None and own.held is not None:
                    own.held.write_pid()
                elif self.pidfile is not None:
                    enter_pidfile(self.pidfile)
            except BaseException as exc:
                if own is not None:
                    # Never written: no pidfile is left behind for a daemon that never ran.
                    own.release()
                if pipe is not None:
                    pipe.fail(1, _describe(exc))
                raise
        finally:
            if null >= 0:
                os.close(null)
        self._is_open = True
        atexit.register(self.close)
        if pipe is not None:
            pipe.ready()

    def close(self) -> None:
        """Exit the pidfile (a ``PidFile`` is removed if it still holds our pid).

        The process stays a daemon: the PEP's close only gives the pidfile back.
        """
        if not self._is_open:
            return
        self._is_open = False
        atexit.unregister(self.close)
        if isinstance(self.pidfile, PidFile):
            self.pidfile.release()
        elif self.pidfile is not None:
            exit_pidfile(self.pidfile)

    # --- the steps of open() ---

    def _signal_handlers(self) -> dict[int, Any]:
        """``signal_map`` resolved to what ``signal.signal`` takes, checked before any fork."""
        handlers: dict[int, Any] = {}
        for signum, target in self.signal_map.items():
            try:
                signal.getsignal(signum)
            except (ValueError, TypeError) as exc:
                raise DaemonError(f"signal_map: {signum!r} is not a signal number") from exc
            if signum in (signal.SIGKILL, signal.SIGSTOP):
                raise DaemonError(f"signal_map: {signal.Signals(signum).name} cannot be handled")
            if target is None:
                handlers[signum] = signal.SIG_IGN
            elif isinstance(target, str):
                handler = getattr(self, target, None)
                if not callable(handler):
                    raise DaemonError(
                        f"signal_map: {target!r} is not a method of {type(self).__name__}"
                    )
                handlers[signum] = handler
            elif callable(target) or target in (signal.SIG_IGN, signal.SIG_DFL):
                handlers[signum] = target
            else:
                raise DaemonError(f"signal_map: {target!r} for {int(signum)} is not a handler")
        return handlers

    def _preserved_fds(self) -> list[int]:
        fds = []
        for item in self.files_preserve or ():
            if item is None:
                continue
            fd = _fileno(item)
            if not isinstance(fd, int):
                raise TypeError(f"files_preserve: not a file descriptor: {item!r}")
            fds.append(fd)
        return fds

    def _groups(self) -> list[int] | None:
        """The supplementary groups to set, looked up while ``/etc/group`` is still visible.

        None leaves them alone (not root, or staying root without ``initgroups``).
        """
        if self.initgroups:
            try:
                name = pwd.getpwuid(self.uid).pw_name
            except KeyError:
                # python-daemon's rule: no user name, no initgroups.
                name = None
            if name is not None:
                try:
                    return os.getgrouplist(name, self.gid)
                except OSError as exc:
                    raise DaemonOSEnvironmentError(
                        exc.errno, f"cannot list groups of {name}: {exc.strerror}"
                    ) from exc
        if os.geteuid() == 0 and self.uid != 0:
            # Dropping root must not keep root's groups (python-daemon keeps them).
            return []
        return None

    def _lock_and_change_environment(
        self, own: PidFile | None, own_at: str | None, groups: list[int] | None
    ) -> None:
        """Set the umask, lock the ``PidFile`` (at ``own_at``), then change the environment.

        Undone on failure: the ``PidFile`` is released and the caller's umask restored.
        """
        # The context's umask from the pidfile's creation on, as run() does:
        # with umask=0o077 the pidfile is 0600, not the caller's 0644.
        caller_umask = os.umask(self.umask)
        try:
            if own is not None:
                own.lock(at=own_at, owner=self.uid)
            try:
                self._change_environment(own, groups)
            except BaseException:
                if own is not None:
                    own.release()
                raise
        except BaseException:
            # Nothing started: the caller keeps the umask it had.
            os.umask(caller_umask)
            raise

    def _change_environment(self, own: PidFile | None, groups: list[int] | None) -> None:
        """Chroot, cwd, owner and core limit, in the calling process (errors reach it)."""
        try:
            if not self.detach_process and os.geteuid() == 0 and self.uid != 0:
                # Before the chroot hides /dev/tty: the dropped program must not
                # type into root's terminal (TIOCSTI); a detached one has setsid.
                from ._prefork._terminal import give_up_terminal

                give_up_terminal()
            if own is not None and own.held is not None:
                if os.geteuid() == 0 and (self.uid, self.gid) != (0, 0):
                    # The dropped daemon must still be able to remove it in a sticky /run.
                    own.held.chown(self.uid, self.gid)
                if self.chroot_directory is not None:
                    own.held.enter_chroot(_as_path(self.chroot_directory))
            if self.chroot_directory is not None:
                inside = inside_chroot(self.chroot_directory, self.working_directory)
                _privileges.enter_chroot(self.chroot_directory, inside)
            else:
                os.chdir(self.working_directory)
            _privileges.set_identity(self.uid, self.gid, groups)
            if self.prevent_core:
                _privileges.disable_core_dumps()
        except StartupError as exc:
            raise DaemonOSEnvironmentError(str(exc)) from exc
        except OSError as exc:
            raise DaemonOSEnvironmentError(exc.errno, _describe(exc)) from exc

    def _detach(self) -> ReadinessPipe | None:
        """Fork away if asked; in the daemon, return its end of the readiness pipe."""
        if not self.detach_process:
            return None
        try:
            return _detach.fork_daemon(on_ready=_nothing, on_failure=_report_failure)
        except OSError as exc:
            raise DaemonProcessDetachError(exc.errno, f"cannot fork: {exc.strerror}") from exc


def _nothing(pid: int) -> None:
    """The caller of a detached ``open()`` has nothing to say once the daemon is up."""


def _report_failure(result: LaunchResult) -> None:
    # Imported at the top: the caller may be inside its chroot by now.
    say(result.message)


def _fileno(item: object) -> object:
    fileno = getattr(item, "fileno", None)
    if fileno is None:
        return item
    try:
        return fileno()
    except (OSError, ValueError):
        return None


def _stream_fd(name: str, stream: HasFileno | None) -> int | None:
    if stream is None:
        return None
    fd = _fileno(stream)
    if not isinstance(fd, int) or fd < 0:
        raise DaemonError(f"{name}: {stream!r} has no file descriptor for the daemon's {name}")
    return fd


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DaemonError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}"


def _as_path(path: str | os.PathLike[str]) -> Any:
    from pathlib import Path

    return Path(path)
