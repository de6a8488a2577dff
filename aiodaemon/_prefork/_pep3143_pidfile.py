"""Where a PEP 3143 program's pidfile lives, and lockfile's calls and errors, for ``pep3143``.

python-daemon and pep3143daemon take their pidfile in the daemon, after the
chroot and the chdir; aiodaemon locks its ``PidFile`` in the calling process,
before both (so "already running" reaches the caller, and the file may sit in
a root-only ``/run``). A relative path must still name the file the original
libraries create, so it is resolved here, ahead of time, the way the daemon
will see it. lockfile's ``break_lock()`` removes a file whoever holds it; an
``flock`` ends only with its holder, so only a file nobody holds is broken.
A program's own pidfile object may follow python-daemon's protocol (a context
manager, as lockfile's are) or pep3143daemon's (``acquire``/``release``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys

from ..exceptions import AlreadyRunningError, DaemonError

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]
    #: a context's directories as python-daemon and pep3143daemon take them:
    #: bytes too (the system calls do).
    AnyPath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]

__all__ = [
    "break_stale_lock",
    "check_pidfile_protocol",
    "enter_pidfile",
    "exit_pidfile",
    "inside_chroot",
    "lockfile_holder",
    "pidfile_location",
    "widen_to_lockfile_error",
]


def inside_chroot(root: AnyPath, workdir: AnyPath) -> str:
    """``workdir`` as seen inside the chroot ``root``.

    python-daemon takes it inside already; pep3143daemon takes a host path
    under ``root`` (``/srv/jail/data`` for ``/data``): both are understood.
    """
    root_path = os.path.normpath(os.fsdecode(root))
    path = os.path.normpath(os.fsdecode(workdir))
    if root_path != "/" and (path == root_path or path.startswith(root_path + "/")):
        return "/" + os.path.relpath(path, root_path).removeprefix(".")
    return path


def _directory(workdir: AnyPath | int) -> str:
    """``workdir`` as a path: a directory's fd (chdir takes one) by the path /proc gives it."""
    if isinstance(workdir, int):
        return os.readlink(f"/proc/self/fd/{workdir}")
    return os.fsdecode(workdir)


def _from_cwd(*parts: str) -> str:
    """``parts`` joined, under the current directory only when that is still relative.

    Not ``os.path.join(os.getcwd(), ...)``: a program started in a directory
    removed since has none, and an absolute ``working_directory`` needs none.
    """
    joined = os.path.join(*parts)
    return joined if os.path.isabs(joined) else os.path.join(os.getcwd(), joined)


def pidfile_location(path: AnyPath, workdir: AnyPath | int, root: AnyPath | None) -> str:
    """The path, valid in the calling process, of the file the daemon would open as ``path``.

    An absolute ``path`` is a path of the calling process, as aiodaemon always
    took it (so ``/run/foo.pid`` stays outside a chroot). A relative one is
    under ``workdir``, inside ``root`` when there is one: where python-daemon
    and pep3143daemon, which open it after their chroot and chdir, put it.

    Args:
        path: the ``PidFile``'s path.
        workdir: the context's ``working_directory`` (a path, or a directory's fd).
        root: the context's ``chroot_directory``, or None.

    Raises:
        OSError: a relative path's directory is missing or not a directory
            (the error the chdir into ``workdir`` would give, before the lock).
    """
    path = os.fsdecode(path)
    if os.path.isabs(path):
        return path
    if root is None:
        location = _from_cwd(_directory(workdir), path)
    else:
        # Lexically inside the jail: ".." stops at its root there, as the kernel
        # stops it at the root of a chrooted process.
        # (check_paths refuses a directory's fd with a chroot: it leads out of the jail.)
        assert not isinstance(workdir, int)
        inside = os.path.normpath(os.path.join("/", inside_chroot(root, workdir), path))
        location = _from_cwd(os.fsdecode(root), inside.lstrip("/"))
    directory = os.path.dirname(location)
    if not stat.S_ISDIR(os.stat(directory).st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), directory)
    return location


def break_stale_lock(path: StrPath) -> None:
    """Unlink the pidfile ``path`` when no process holds its ``flock``.

    A held lock is left alone: the lock ends only with its holder, and
    unlinking a live daemon's file would let a second daemon start beside it.

    Raises:
        OSError: the file cannot be opened (not for a missing one) or unlinked.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        return
    try:
        try:
            # Held while unlinking: a daemon starting on this path now waits,
            # then opens the path afresh (see _pidfile._lock_exclusive).
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        st = os.fstat(fd)
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not os.path.samestat(current, st):
            return  # replaced meanwhile: not the file we found unlocked
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file; not removed", os.fspath(path))
        try:
            os.unlink(path)
        except FileNotFoundError:
            return  # removed by someone else meanwhile: broken all the same
    finally:
        os.close(fd)


def lockfile_holder(path: StrPath) -> int | None:
    """The pid of a live lockfile daemon (python-daemon's) named by the unlocked ``path``; or None.

    lockfile takes no ``flock``: its daemon is known only by the pid it wrote.
    While the python-daemon version of a program still runs, the first start
    of its aiodaemon version found the file unlocked and started beside it.
    The pid counts only when that process runs our interpreter as the user
    who owns the file (lockfile creates it anew, after python-daemon's uid
    drop): a recycled pid is mostly another program's, or another user's.
    No time is compared: the file's mtime is wall-clock time, and a clock
    stepped forward since it was written (NTP after boot) made a live
    daemon look younger than its file, so two instances ran. A recycled pid
    of the same interpreter and user is taken for the daemon: the start is
    refused, never run beside it. Anything /proc will not tell: None.
    """
    from ._pidfile_status import PidfileStatus, read_pidfile

    state = read_pidfile(path)
    pid = state.pid
    if state.status is not PidfileStatus.DEAD or pid is None or pid == os.getpid():
        return None
    from ._procfs import uids

    try:
        owner = os.stat(path, follow_symlinks=False).st_uid
        if os.readlink(f"/proc/{pid}/exe") != os.path.realpath(sys.executable):
            return None
    except OSError:
        return None
    ids = uids(pid)
    return pid if ids is not None and owner in ids else None


#: (our error's class, lockfile's) → a class deriving from both, made once each.
_LOCKFILE_FLAVOURS: dict[tuple[type[DaemonError], type[Exception]], type[Any]] = {}


def widen_to_lockfile_error(exc: DaemonError, waited: bool) -> None:
    """Make ``exc`` also lockfile's error for it, when the program imported lockfile.

    Programs written for python-daemon catch what its lockfile pidfiles raise
    around ``open()`` or ``acquire()``: ``AlreadyLocked`` (a holder, no
    timeout), ``LockTimeout`` (still held after the timeout), ``LockFailed``
    (the file cannot be made). Ours then passed through their ``except`` as a
    traceback. Only a program that imported lockfile can name its classes, so
    lockfile is never imported here; the class keeps its name, module and
    ``except AlreadyRunningError`` still catches it.

    Args:
        exc: an ``AlreadyRunningError`` or a ``StartupError`` of the pidfile.
        waited: a timeout above 0 ran out (lockfile's ``LockTimeout``).
    """
    lockfile = sys.modules.get("lockfile")
    name = "LockFailed"
    if isinstance(exc, AlreadyRunningError):
        name = "LockTimeout" if waited else "AlreadyLocked"
    base = getattr(lockfile, name, None)
    if not (isinstance(base, type) and issubclass(base, Exception)) or isinstance(exc, base):
        return
    ours = type(exc)
    flavour = _LOCKFILE_FLAVOURS.get((ours, base))
    if flavour is None:
        try:
            flavour = type(ours.__name__, (ours, base), {"__module__": ours.__module__})
        except TypeError:
            return  # an unrelated module named lockfile whose class cannot be mixed in
        flavour.__qualname__ = ours.__qualname__
        _LOCKFILE_FLAVOURS[ours, base] = flavour
    # The same object, its traceback and cause kept: only its class widens.
    exc.__class__ = flavour


def check_pidfile_protocol(pidfile: object) -> None:
    """Refuse a ``pidfile`` that follows neither protocol.

    Raises:
        DaemonError: naming the object.
    """
    if isinstance(pidfile, str | bytes | os.PathLike):
        # run()'s pidfile= is a path, so one lands here; a Path is even a
        # do-nothing context manager before Python 3.13: no lock, no file.
        raise DaemonError(
            f"pidfile: {pidfile!r} is a path, not a lock object: give pidfile=PidFile(path)"
        )
    if not (_has(pidfile, "__enter__", "__exit__") or _has(pidfile, "acquire", "release")):
        raise DaemonError(
            f"pidfile: {pidfile!r} has neither __enter__/__exit__ nor acquire/release"
        )


def _has(obj: object, *names: str) -> bool:
    return all(callable(getattr(obj, name, None)) for name in names)


def enter_pidfile(pidfile: Any) -> None:
    """Lock ``pidfile`` by whichever protocol it follows."""
    # python-daemon's protocol first: lockfile objects have both, and enter them.
    if _has(pidfile, "__enter__", "__exit__"):
        pidfile.__enter__()
    else:
        pidfile.acquire()


def exit_pidfile(pidfile: Any) -> None:
    """Release ``pidfile`` by whichever protocol it follows."""
    if _has(pidfile, "__enter__", "__exit__"):
        pidfile.__exit__(None, None, None)
    else:
        pidfile.release()
