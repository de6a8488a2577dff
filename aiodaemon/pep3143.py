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
import errno
import os
import signal

from ._prefork import _detach, _pep3143_open, _pidlock
from ._prefork._fd_placeholders import hold_closed_fds, let_go
from ._prefork._pep3143_caller import tell_caller
from ._prefork._pep3143_open import (
    check_numbers,
    check_paths,
    describe,
    fork_away,
    lock_and_change_environment,
    preserved_fds,
    refuse_detach_as_pid1,
    signal_handlers,
    stream_fd,
    supplementary_groups,
)
from ._prefork._pep3143_pidfile import (
    check_pidfile_protocol,
    enter_pidfile,
    exit_pidfile,
    pidfile_location,
)
from ._prefork._pidlock import PidFile
from ._prefork._stdfds import fill_std_fds
from .exceptions import DaemonError, StartupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from contextlib import AbstractContextManager
    from types import FrameType, TracebackType
    from typing import Any, Protocol, Self, TypeAlias

    class HasFileno(Protocol):
        """A file, socket or anything else with an fd."""

        def fileno(self) -> int: ...

    class AcquiresLock(Protocol):
        """pep3143daemon's pidfile protocol."""

        def acquire(self) -> object: ...

        def release(self) -> object: ...

    #: What ``pidfile`` takes: python-daemon's lockfile protocol or pep3143daemon's
    #: (not a path: ``open()`` refuses a str, so a type checker does too).
    PidfileLock: TypeAlias = "AbstractContextManager[Any] | AcquiresLock"

    #: ``None`` (ignore), a method name of the context, or what ``signal.signal`` takes.
    SignalTarget: TypeAlias = (
        "Callable[[int, FrameType | None], Any] | int | signal.Handlers | str | None"
    )
    #: What ``signal_map`` is given as. Any keys: a Mapping's are invariant, so
    #: ``Mapping[int, ...]`` refuses a prepared ``{signal.SIGHUP: f}`` (Signals keys),
    #: and mypy infers a literal mixing ``"terminate"`` and a handler against neither
    #: member of a union of both; ``open()`` refuses a key that is no signal number.
    SignalMap: TypeAlias = "Mapping[Any, SignalTarget]"

__all__ = [
    "DaemonContext",
    "DaemonError",
    "DaemonOSEnvironmentError",
    "DaemonProcessDetachError",
    "PidFile",
    "daemon",
    "is_detach_process_context_required",
    "make_default_signal_map",
    "pidfile",
]

# The errors of open()'s steps, public here. Assigned, not imported: the API
# reference (griffe reads the source) then shows this path, as __module__ does,
# with the string under each as its description (an alias has no docstring).
DaemonOSEnvironmentError = _pep3143_open.DaemonOSEnvironmentError
"""Setting up the daemon's environment (chroot, cwd, owner, limits, stdio) failed."""
DaemonProcessDetachError = _pep3143_open.DaemonProcessDetachError
"""Forking away from the calling process failed (or would leave a dead daemon: as PID 1,
or with the first fork PID 1 of a new pid namespace)."""
DaemonOSEnvironmentError.__module__ = DaemonProcessDetachError.__module__ = __name__


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

    Both names make an aiodaemon ``PidFile`` (flock), not a lockfile; each
    takes its own signature (``TimeoutPIDLockFile(path, acquire_timeout=None,
    threaded=False, timeout=None)``, ``PIDLockFile(path, threaded=False,
    timeout=None)``), and ``TimeoutPIDLockFile`` derives from ``PIDLockFile``.
    """

    TimeoutPIDLockFile = _pidlock.TimeoutPIDLockFile
    PIDLockFile = _pidlock.PIDLockFile


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
            (pep3143daemon's), entered at the end of ``open()`` and exited by
            ``close()``; a ``PidFile`` (a subclass too) is locked before the fork.
        stdin: file object whose fd becomes fd 0; None: ``/dev/null``.
        stdout: file object whose fd becomes fd 1; None: ``/dev/null``.
        stderr: file object whose fd becomes fd 2; None: ``/dev/null``.
        signal_map: signal number → None (ignore), the name of a method of this
            context, or a handler; default ``make_default_signal_map``.
    """

    def __init__(
        self,
        chroot_directory: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None = None,
        working_directory: str | bytes | os.PathLike[str] | os.PathLike[bytes] | int = "/",
        umask: int = 0o022,
        uid: int | None = None,
        gid: int | None = None,
        initgroups: bool = False,
        prevent_core: bool = True,
        detach_process: bool | None = None,
        files_preserve: Iterable[int | HasFileno | None] | None = None,
        pidfile: PidfileLock | None = None,
        stdin: HasFileno | None = None,
        stdout: HasFileno | None = None,
        stderr: HasFileno | None = None,
        signal_map: SignalMap | None = None,
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
        self.signal_map = make_default_signal_map() if signal_map is None else signal_map
        self._is_open = False

    @property
    def signal_map(self) -> dict[int, SignalTarget]:
        """Signal number → target: a dict, changed in place (``signal_map[SIGHUP] = f``)."""
        return self._signal_map

    @signal_map.setter
    def signal_map(self, value: SignalMap) -> None:
        # Set as the constructor takes it (a prepared ``{signal.SIGHUP: reload}``
        # too, which a dict[int, ...] attribute refused to a type checker). The
        # given dict itself, as python-daemon keeps it; Signals keys are ints.
        self._signal_map = value if isinstance(value, dict) else dict(value)

    @property
    def is_open(self) -> bool:
        """Whether ``open`` has run and ``close`` not yet."""
        return self._is_open

    def __enter__(self) -> Self:  # a subclass's ``with`` target keeps its type
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
        method has finished in the daemon, or with the daemon's error, or as
        a ``SystemExit`` raised there asks, by Python's rules); then in
        the daemon: signal handlers (their signals unblocked), stdio, closing
        every other fd, entering the pidfile (a ``PidFile`` writes the pid).

        Raises:
            AlreadyRunningError: the ``PidFile`` is held by a live process.
            DaemonOSEnvironmentError: chroot, cwd, owner, umask or limit failed,
                a directory is no path, or a stream's fd is not open.
            DaemonProcessDetachError: the fork failed, or ``detach_process`` is
                true in PID 1 (a container's entrypoint), whose exit would kill
                the daemon: nothing is changed then; or the first fork was PID 1
                of a new pid namespace (``unshare --pid`` without ``--fork``),
                whose exit would kill the daemon: nothing runs, the ``PidFile``
                is gone, the environment changed as for a failed fork.
            DaemonError: a stream has no fd, a pidfile object no known protocol,
                or a ``signal_map`` entry is unusable.
            TypeError: a ``files_preserve`` entry is not an fd.
        """
        if self._is_open:
            return
        refuse_detach_as_pid1(self)
        check_numbers(self)
        check_paths(self)
        handlers = signal_handlers(self)
        preserved = preserved_fds(self)
        streams = [stream_fd(name, getattr(self, name)) for name in ("stdin", "stdout", "stderr")]
        own = self.pidfile if isinstance(self.pidfile, PidFile) else None
        if self.pidfile is not None and own is None:
            check_pidfile_protocol(self.pidfile)
        own_at: str | None = None
        if own is not None:
            own.check_path()
            # Where the daemon would open a relative path (python-daemon's file).
            try:
                own_at = pidfile_location(own.path, self.working_directory, self.chroot_directory)
            except OSError as exc:
                raise DaemonOSEnvironmentError(exc.errno, describe(exc)) from exc
        groups = supplementary_groups(self)
        # Started with fds 0-2 closed (cron, `cmd <&- >&-`), the pidfile and
        # /dev/null below would take them, and the redirection of stdio would
        # then close the pidfile (its lock lost, its pid never written).
        try:
            fill_std_fds()
        except StartupError as exc:
            raise DaemonOSEnvironmentError(errno.EBADF, str(exc)) from None
        # Before anything of ours is opened: a closed number in files_preserve
        # must not get /dev/null, the pidfile or a pipe (see _fd_placeholders).
        placeholders = hold_closed_fds(preserved)
        null = -1
        try:
            # /dev/null opened before a chroot, which may have none.
            null = os.open(os.devnull, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            lock_and_change_environment(self, own, own_at, groups)
            try:
                pipe = fork_away(self, own)
            except BaseException:
                if own is not None:
                    # Nothing forked: the locked, still empty file goes, as below.
                    own.unlock()
                raise
            try:
                for signum, handler in handlers.items():
                    signal.signal(signum, handler)
                # A starter's blocked mask survives fork and exec (a supervisor
                # blocking signals in the thread that spawns): a blocked SIGTERM
                # would wait for ever instead of reaching its handler.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, handlers)
                _detach.redirect_stdio(
                    null if streams[1] is None else streams[1],
                    null if streams[2] is None else streams[2],
                    null if streams[0] is None else streams[0],
                )
                keep = [*preserved, *(fd for fd in streams if fd is not None)]
                if own is not None and own.held is not None:
                    keep.append(own.held.fd)
                if pipe is not None:
                    keep.extend(pipe.fds())
                _detach.close_inherited_fds(keep)
                null = -1  # closed with the rest (0-2 hold its copies)
                # Kept as files_preserve numbers: closed again, as python-daemon leaves them.
                let_go(placeholders)
                placeholders = []
                if self.pidfile is not None:
                    if pipe is not None and own is None:
                        # A lock that waits for its holder (lockfile's FileLock)
                        # holds the caller too: it says so after a second.
                        pipe.note_waiting()
                    # Entered as python-daemon enters it, in the daemon: a subclass's
                    # __enter__ and acquire() run. Locked already, a PidFile's
                    # acquire() only writes the pid.
                    enter_pidfile(self.pidfile)
                if own is not None:
                    own.keep_from_forked_children()
            except BaseException as exc:
                if own is not None:
                    # Never written: no pidfile is left behind for a daemon that never ran.
                    own.unlock()
                if pipe is not None:
                    # A SystemExit ("another instance runs: nothing to do") ends
                    # the caller as the interpreter would have ended the program.
                    tell_caller(pipe, exc)
                raise
        finally:
            if null >= 0:
                os.close(null)
            let_go(placeholders)
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
        if self.pidfile is not None:
            # A PidFile's __exit__ is release(): a subclass's overrides run.
            exit_pidfile(self.pidfile)


class _Daemon:
    """python-daemon's ``daemon.daemon`` module: ``except daemon.daemon.DaemonError`` works.

    Such a clause is evaluated only when an error passes: without this it
    raised ``AttributeError`` over the program's own error handling.
    """

    DaemonContext = DaemonContext
    DaemonError = DaemonError
    DaemonOSEnvironmentError = DaemonOSEnvironmentError
    DaemonProcessDetachError = DaemonProcessDetachError
    make_default_signal_map = staticmethod(make_default_signal_map)
    is_detach_process_context_required = staticmethod(is_detach_process_context_required)


#: ``daemon.daemon`` for programs written for python-daemon.
daemon = _Daemon
