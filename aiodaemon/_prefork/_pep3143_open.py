"""The steps of ``DaemonContext.open()`` (``aiodaemon.pep3143``), and the errors they raise.

``open()`` puts them in order; each is here. First every argument is checked
and resolved, before anything changes: the ``signal_map`` to handlers, the fds
to keep, the stdio streams' fds, the supplementary groups (looked up while
``/etc/group`` is still visible). Then, in the calling process so that its
errors reach the caller: the umask, the ``PidFile`` lock, chroot, working
directory, owner and core limit. Then the fork. The two errors are public in
``aiodaemon.pep3143``, which gives them its name.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal

from ..exceptions import AlreadyRunningError, DaemonError, StartupError
from . import _detach, _privileges
from ._messages import say
from ._pep3143_pidfile import inside_chroot

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any, Protocol, TypeAlias

    from ._pidlock import PidFile
    from ._readiness import LaunchResult, ReadinessPipe

    #: bytes too, as python-daemon and pep3143daemon take them (see _change_environment).
    StrPath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]

    class Context(Protocol):
        """What the steps read of a ``DaemonContext``: its arguments, as attributes."""

        @property
        def chroot_directory(self) -> StrPath | None: ...
        @property
        def working_directory(self) -> StrPath | int: ...
        @property
        def umask(self) -> int: ...
        @property
        def uid(self) -> int: ...
        @property
        def gid(self) -> int: ...
        @property
        def initgroups(self) -> bool: ...
        @property
        def prevent_core(self) -> bool: ...
        @property
        def detach_process(self) -> bool: ...
        @property
        def files_preserve(self) -> Iterable[object] | None: ...
        @property
        def signal_map(self) -> Mapping[int, object]: ...
        @property
        def pidfile(self) -> object: ...


__all__ = [
    "DaemonOSEnvironmentError",
    "DaemonProcessDetachError",
    "check_numbers",
    "check_paths",
    "describe",
    "fork_away",
    "lock_and_change_environment",
    "preserved_fds",
    "refuse_detach_as_pid1",
    "signal_handlers",
    "stream_fd",
    "supplementary_groups",
]


class DaemonOSEnvironmentError(DaemonError, OSError):
    """Setting up the daemon's environment (chroot, cwd, owner, limits, stdio) failed."""


class DaemonProcessDetachError(DaemonError, OSError):
    """Forking away from the calling process failed."""


# --- checked before anything changes ---


def refuse_detach_as_pid1(context: Context) -> None:
    """Refuse to fork away from PID 1: the kernel kills the namespace with it.

    A container's entrypoint (or ``unshare --pid``) that detaches would exit 0
    and take the daemon down with it, silently; ``run(detach=True)`` refuses
    the same, in the same words.

    Raises:
        DaemonProcessDetachError: ``detach_process`` is true and we are PID 1.
    """
    if context.detach_process and os.getpid() == 1:
        from ._init import detach_refusal

        raise DaemonProcessDetachError(detach_refusal("detach_process=False"))


def signal_handlers(context: Context) -> dict[int, Any]:
    """``signal_map`` resolved to what ``signal.signal`` takes, checked before any fork."""
    handlers: dict[int, Any] = {}
    for signum, target in context.signal_map.items():
        try:
            signal.getsignal(signum)
        except (ValueError, TypeError) as exc:
            raise DaemonError(f"signal_map: {signum!r} is not a signal number") from exc
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            raise DaemonError(f"signal_map: {signal.Signals(signum).name} cannot be handled")
        if signum not in signal.valid_signals():
            # 32 and 33, below SIGRTMIN: glibc keeps them for its threads, and
            # signal.signal() raised EINVAL once open() had changed the cwd.
            raise DaemonError(f"signal_map: signal {int(signum)} cannot be handled")
        if target is None:
            handlers[signum] = signal.SIG_IGN
        elif isinstance(target, str):
            handler = getattr(context, target, None)
            if not callable(handler):
                raise DaemonError(
                    f"signal_map: {target!r} is not a method of {type(context).__name__}"
                )
            handlers[signum] = handler
        elif callable(target) or target in (signal.SIG_IGN, signal.SIG_DFL):
            handlers[signum] = target
        else:
            raise DaemonError(f"signal_map: {target!r} for {int(signum)} is not a handler")
    return handlers


def check_numbers(context: Context) -> None:
    """Refuse a ``umask``, ``uid`` or ``gid`` the system calls would, before anything changes.

    ``os.umask("027")`` and ``setresuid(-5)`` raise TypeError and OverflowError,
    the latter only once the chroot and the working directory were changed.

    Raises:
        DaemonOSEnvironmentError: naming the attribute, as python-daemon names
            the step whose call failed.
    """
    for name, end in (("umask", 0o1000), ("uid", 2**32 - 1), ("gid", 2**32 - 1)):
        value = getattr(context, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < end:
            limit = "0o777" if name == "umask" else str(end - 1)
            raise DaemonOSEnvironmentError(
                f"{name}: must be an int from 0 to {limit}, not {value!r}"
            )


def check_paths(context: Context) -> None:
    """Refuse a ``working_directory`` or ``chroot_directory`` no system call takes.

    ``working_directory=None`` raised chdir's TypeError (python-daemon's
    DaemonOSEnvironmentError), a NUL byte a ValueError, an empty path "No
    such file or directory" naming nothing.

    Raises:
        DaemonOSEnvironmentError: naming the attribute, as :func:`check_numbers`.
    """
    for name in ("working_directory", "chroot_directory"):
        value = getattr(context, name)
        if value is None and name == "chroot_directory":
            continue
        # chdir also takes a directory's fd (python-daemon passes it through); chroot does not.
        if name == "working_directory" and isinstance(value, int) and not isinstance(value, bool):
            if context.chroot_directory is not None:
                # python-daemon's fchdir after its chroot leaves the process outside the jail.
                raise DaemonOSEnvironmentError(
                    f"{name}: a descriptor ({value}) would lead out of chroot_directory;"
                    " give the directory's path inside it"
                )
            continue
        if not isinstance(value, str | bytes | os.PathLike):
            what = "None" if value is None else type(value).__name__
            raise DaemonOSEnvironmentError(f"{name}: must be a path, not {what}")
        text = os.fsdecode(value)
        if not text:
            raise DaemonOSEnvironmentError(f"{name}: must not be empty")
        if "\0" in text:
            raise DaemonOSEnvironmentError(f"{name}: must not contain a NUL byte: {text!r}")


#: past a C int: no descriptor, and the fd closing after the fork would overflow.
_FD_END = 2**31


def preserved_fds(context: Context) -> list[int]:
    """The fds of ``files_preserve``.

    A negative one (a closed socket's ``fileno()`` is -1) is skipped as
    python-daemon skips it: nothing is open there to keep.

    Raises:
        TypeError: an entry is not an fd.
    """
    fds = []
    for item in context.files_preserve or ():
        if item is None:
            continue
        fd = _fileno(item)
        if isinstance(fd, bool) or not isinstance(fd, int) or fd >= _FD_END:
            raise TypeError(f"files_preserve: not a file descriptor: {item!r}")
        if fd >= 0:
            fds.append(fd)
    return fds


def stream_fd(name: str, stream: object) -> int | None:
    """The fd of the stream given as ``stdin``, ``stdout`` or ``stderr`` (``name``).

    Raises:
        DaemonError: the stream has no fd.
        DaemonOSEnvironmentError: its fd is not open (``dup2`` failed with
            EBADF after the fork, where the caller never saw it).
    """
    if stream is None:
        return None
    fd = _fileno(stream)
    if isinstance(fd, bool) or not isinstance(fd, int) or not 0 <= fd < _FD_END:
        raise DaemonError(f"{name}: {stream!r} has no file descriptor for the daemon's {name}")
    try:
        os.fstat(fd)
    except OSError as exc:
        raise DaemonOSEnvironmentError(
            exc.errno, f"{name}: {stream!r} is not an open file descriptor"
        ) from exc
    return fd


def supplementary_groups(context: Context) -> list[int] | None:
    """The supplementary groups to set, looked up while ``/etc/group`` is still visible.

    None leaves them alone (not root, or staying root without ``initgroups``).
    """
    if context.initgroups:
        try:
            name = pwd.getpwuid(context.uid).pw_name
        except KeyError:
            # python-daemon's rule: no user name, no initgroups.
            name = None
        if name is not None:
            try:
                return _privileges.group_list(name, context.gid)
            except OSError as exc:
                raise DaemonOSEnvironmentError(
                    exc.errno, f"cannot list groups of {name}: {exc.strerror}"
                ) from exc
    if os.geteuid() == 0 and context.uid != 0:
        # Dropping root must not keep root's groups (python-daemon keeps them).
        return []
    return None


def _fileno(item: object) -> object:
    fileno = getattr(item, "fileno", None)
    if fileno is None:
        return item
    try:
        return fileno()
    except (OSError, ValueError):
        return None


# --- the changes, in the calling process ---


def lock_and_change_environment(
    context: Context, own: PidFile | None, own_at: str | None, groups: list[int] | None
) -> None:
    """Set the umask, lock the ``PidFile`` (at ``own_at``), then change the environment.

    Undone on failure: the ``PidFile`` is released and the caller's umask restored.
    """
    # The context's umask from the pidfile's creation on, as run() does:
    # with umask=0o077 the pidfile is 0600, not the caller's 0644.
    caller_umask = os.umask(context.umask)
    try:
        if own is not None:
            _lock(context, own, own_at)
        try:
            _change_environment(context, own, groups)
        except BaseException:
            if own is not None:
                own.unlock()
            raise
    except BaseException:
        # Nothing started: the caller keeps the umask it had.
        os.umask(caller_umask)
        raise


def _lock(context: Context, own: PidFile, own_at: str | None) -> None:
    """Lock the ``PidFile`` at ``own_at``; an absolute path's error says it is the host's."""
    try:
        own.lock(at=own_at, owner=context.uid)
    except StartupError as exc:
        if (
            context.chroot_directory is not None
            and os.path.isabs(own.path)
            and not isinstance(exc, AlreadyRunningError)
        ):
            # "/data/p.pid: No such file or directory" read as the jail's /data,
            # where a relative path would lead (see pidfile_location).
            exc.args = (f"{exc} (a path outside the chroot_directory)", *exc.args[1:])
        raise


def _change_environment(context: Context, own: PidFile | None, groups: list[int] | None) -> None:
    """Chroot, cwd, owner and core limit, in the calling process (errors reach it).

    A failure after the chroot (a working directory missing inside the jail, a
    group refused) takes the caller back out: it catches the error, and must
    not be left where none of its own files can be reached.
    """
    outside: tuple[int, int | None] | None = None
    seen_at = None if own is None or own.held is None else own.held.visible_path
    try:
        if not context.detach_process and os.geteuid() == 0 and context.uid != 0:
            # Before the chroot hides /dev/tty: the dropped program must not
            # type into root's terminal (TIOCSTI); a detached one has setsid.
            from ._terminal import give_up_terminal

            give_up_terminal()
        if own is not None and own.held is not None:
            if os.geteuid() == 0 and (context.uid, context.gid) != (0, 0):
                # The dropped daemon must still be able to remove it in a sticky /run.
                own.held.chown(context.uid, context.gid)
            if context.chroot_directory is not None:
                own.held.enter_chroot(_as_path(os.fsdecode(context.chroot_directory)))
        if context.chroot_directory is not None:
            # Decoded as the system calls would take bytes: errors name the path, not b'...'.
            root = os.fsdecode(context.chroot_directory)
            workdir = context.working_directory
            assert not isinstance(workdir, int)  # refused by check_paths: it leads out
            outside = _where_we_are()
            _privileges.enter_chroot(root, inside_chroot(root, workdir))
        else:
            workdir = context.working_directory
            # A directory's fd passes through, as python-daemon passes it.
            os.chdir(workdir if isinstance(workdir, int) else os.fsdecode(workdir))
        _privileges.set_identity(context.uid, context.gid, groups)
        if context.prevent_core:
            _privileges.disable_core_dumps()
    except BaseException as exc:
        if outside is not None:
            _go_back(outside)
            if own is not None and own.held is not None:
                # Removed by the caller next, from outside again.
                own.held.visible_path = seen_at
        if isinstance(exc, StartupError):
            raise DaemonOSEnvironmentError(str(exc)) from exc
        if isinstance(exc, OSError):
            raise DaemonOSEnvironmentError(exc.errno, describe(exc)) from exc
        raise
    finally:
        # Never kept: a descriptor of a directory outside is the way out of a jail.
        if outside is not None:
            for fd in outside:
                if fd is not None:
                    os.close(fd)


def _where_we_are() -> tuple[int, int | None]:
    """Descriptors of the root and the working directory, to come back to (see _go_back)."""
    flags = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
    root = os.open("/", flags)
    try:
        cwd: int | None = os.open(".", flags)
    except OSError:  # a working directory removed meanwhile: back to the root then
        cwd = None
    return root, cwd


def _go_back(outside: tuple[int, int | None]) -> None:
    """Leave the chroot for the root and working directory of before, as root still may."""
    root, cwd = outside
    with contextlib.suppress(OSError):
        os.fchdir(root)
        os.chroot(".")
        os.fchdir(root if cwd is None else cwd)


def _as_path(path: str | os.PathLike[str]) -> Any:
    from pathlib import Path

    return Path(path)


# --- the fork ---


def fork_away(context: Context, own: PidFile | None) -> ReadinessPipe | None:
    """Fork away if asked; in the daemon, return its end of the readiness pipe.

    Args:
        context: the context being opened.
        own: its ``PidFile``, locked: the caller removes it when the start
            fails (see :func:`_report_failure`).
    """
    if not context.detach_process:
        return None
    _warn_threads()

    def report_failure(result: LaunchResult) -> None:
        _report_failure(result, own)

    def stalled() -> None:
        _say_stalled(context.pidfile)

    try:
        return _detach.fork_daemon(
            on_ready=_nothing,
            on_failure=report_failure,
            foreground="detach_process=False",
            on_stall=stalled,
            # os._exit(0) in the pidfile's __enter__ (another instance runs):
            # as sys.exit(0) there, nothing to do, not a failed start.
            quiet_success=True,
        )
    except StartupError as exc:
        # fork_daemon says why (the readiness pipe or the fork, EAGAIN at
        # RLIMIT_NPROC, or a first fork that is PID 1 of a new pid namespace)
        # as a StartupError, which a python-daemon program's
        # ``except DaemonProcessDetachError`` let through as a traceback.
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno is not None:
            raise DaemonProcessDetachError(cause.errno, str(exc)) from exc
        raise DaemonProcessDetachError(str(exc)) from exc


def _warn_threads() -> None:
    """Warn of the threads the fork leaves behind (python-daemon forks silently)."""
    names = _detach.python_threads()
    if names:
        import threading  # loaded already: python_threads found threads

        # Only the thread calling open() goes on in the daemon: from another
        # than the main one, the main one is among those left behind.
        current = threading.current_thread()
        if current is threading.main_thread():
            running = f"threads run beside the main one ({', '.join(names)})"
        else:
            running = (
                f"threads other than the one calling open() ({current.name}) run:"
                f" {', '.join(names)}"
            )
        # Warned, not refused as run() refuses them: python-daemon programs
        # that start one (a library's) before open() worked, and still do.
        say(
            f"warning: {running}; the detach's fork leaves them behind, and the daemon"
            " may hang on a lock they held: start them after open()"
        )
    _detach.warn_unseen_threads("after open()")


def _say_stalled(pidfile: object) -> None:
    """In the caller: the daemon's ``open()`` has waited a second for its pidfile's lock.

    lockfile's ``FileLock(path)`` (the PEP's example) waits as long as
    another process holds it, and the caller with it: a start script would
    hang without a word.
    """
    path = getattr(pidfile, "path", None)
    name = type(pidfile).__name__
    if isinstance(path, str | bytes | os.PathLike):
        name = f"{name} {os.fsdecode(path)}"
    say(
        f"still waiting for the pidfile's lock ({name}): another process holds it? The"
        " start ends once open() has it (give the pidfile a timeout to fail instead)"
    )


def _nothing(pid: int) -> None:
    """The caller of a detached ``open()`` has nothing to say once the daemon is up."""


def _report_failure(result: LaunchResult, own: PidFile | None) -> None:
    """In the caller, once the daemon failed: say why, and remove the ``PidFile``.

    The daemon removes it when its ``open()`` fails; but the second fork
    refused, or a daemon killed before its ``open()`` ended, left it behind
    (empty, or with a dead pid), as ``run()``'s launcher does not.
    """
    # Imported at the top: the caller may be inside its chroot by now.
    if result.message:  # none: the program ended itself quietly (see _pep3143_caller)
        say(result.message)
    held = None if own is None else own.held
    if held is not None:
        try:  # noqa: SIM105 (no contextlib on the pep3143 path)
            # Only while it is still the daemon's file (or empty): see Pidfile.remove.
            held.remove(owner=result.pid)
        except OSError:
            pass  # the exit status and the message above are what the caller has to say


def describe(exc: BaseException) -> str:
    """A failure of ``open()`` in a line: what the caller reports, or an ``OSError``'s text."""
    if isinstance(exc, DaemonError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror}{where}"
    text = str(exc)
    # An exception raised without a message: its type alone, not "Type: ".
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
