"""The flock pidfile of ``aiodaemon.pep3143`` (public there as ``PidFile``).

On top of ``._pidfile``'s rules (``flock``, ``O_NOFOLLOW``, regular files
only, removed only while it holds our pid), with the protocols PEP 3143
programs use: ``acquire()``/``release()`` and the context manager.
"""

from __future__ import annotations

import os
import time

from ._detach import close_if_same

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from ._pidfile import Pidfile

__all__ = ["PIDLockFile", "PidFile", "TimeoutPIDLockFile"]


class PidFile:
    """A pidfile locked with ``flock`` and holding the pid and a newline, mode 0644 minus the umask.

    The lock, not the file's existence, says who runs: a file left by a crash
    never blocks a start. Never followed through a symlink; refused in a
    world-writable directory without the sticky bit, and when another user
    created it in a shared sticky one (as the ``pidfile=`` option). Given to
    ``DaemonContext``, it is locked in the calling process before the
    fork (before a chroot or a privilege drop, so it may live in ``/run``) and
    holds the daemon's pid once ``open()`` returns; it is removed by
    ``close()`` if it still holds our pid (emptied instead where the user
    the context dropped to may not remove it). ``open()`` ends by entering it
    in the daemon (``__enter__``, which calls ``acquire()``: as the lock is
    held, it only writes the pid) and ``close()`` exits it (``__exit__``,
    which calls ``release()``), as python-daemon does: a subclass's overrides
    run then, ``is_locked()`` and ``i_am_locking()`` True in them already. A
    relative path is the daemon's:
    under the context's ``working_directory`` (inside its chroot), as with
    python-daemon. Used alone, ``acquire()`` locks it and writes the current
    pid. A bytes path is taken as pep3143daemon's ``PidFile`` takes it.

    Args:
        path: the pidfile's path.
        acquire_timeout: seconds to wait for a live holder to let go; None or
            0 fails at once (as python-daemon's ``TimeoutPIDLockFile``).
        timeout: lockfile's default wait, used when ``acquire_timeout`` is None.

    Where the program imported ``lockfile``, its failures are also lockfile's
    ``AlreadyLocked``, ``LockTimeout`` (a wait ran out) or ``LockFailed``.
    """

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        acquire_timeout: float | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        # Bytes as pep3143daemon's PidFile takes them (open() does), decoded
        # as the system calls would: every message names the path as text.
        self.path = os.fsdecode(path)
        self.acquire_timeout = acquire_timeout
        self.timeout = timeout
        self._held: Pidfile | None = None

    def __repr__(self) -> str:
        return f"PidFile({self.path!r})"

    def acquire(self, timeout: float | None = None) -> None:
        """Lock the file and write our pid into it.

        Raises:
            AlreadyRunningError: a live process holds the lock (after ``timeout``).
            StartupError: the file cannot be opened (symlink, permissions, not a file).
        """
        locked_here = self._held is None
        if locked_here:
            self.lock(timeout)
        assert self._held is not None
        try:
            self._held.write_pid()
        except BaseException:
            if locked_here:
                # The caller sees a failure, so it holds nothing: a lock kept on
                # the empty file said "already running" to every start until it exited.
                self.release()
            raise

    def release(self) -> None:
        """Remove the file if it still holds our pid, and unlock it."""
        self.unlock()

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def read_pid(self) -> int | None:
        """The pid in the file, None when absent, empty or garbage."""
        from ._pidfile_status import read_pidfile

        return read_pidfile(self.path).pid

    def is_locked(self) -> bool:
        """Whether a live process (perhaps this one) holds the lock, or a lockfile daemon the file.

        The latter (python-daemon's, which takes no lock) is the one
        ``acquire()`` refuses to start beside (see ``lockfile_holder``).
        """
        from ._pep3143_pidfile import lockfile_holder
        from ._pidfile_status import PidfileStatus, read_pidfile

        if self._held is not None:
            return True
        if read_pidfile(self.path).status is PidfileStatus.RUNNING:
            return True
        return lockfile_holder(self.path) is not None

    def i_am_locking(self) -> bool:
        """Whether this object holds the lock."""
        return self._held is not None

    def break_lock(self) -> None:
        """Remove the file if no process holds its lock (lockfile's call for a stale lock).

        Unlike lockfile, a held lock (this object's too) is left alone: an
        ``flock`` ends only with its holder, and removing a live daemon's file
        would let a second daemon start beside it. So is the file of a live
        lockfile daemon (``is_locked()``), python-daemon's.

        Raises:
            OSError: the file cannot be opened (a missing one is fine) or removed.
        """
        from ._pep3143_pidfile import break_stale_lock, lockfile_holder

        if self._held is None and lockfile_holder(self.path) is None:
            break_stale_lock(self.path)

    # --- DaemonContext's side: lock before the fork, write the pid after it ---

    def lock(
        self, timeout: float | None = None, *, at: str | None = None, owner: int | None = None
    ) -> None:
        """Take the lock (without writing a pid), waiting up to ``timeout`` for a live holder.

        Args:
            timeout: seconds to wait; None: ``acquire_timeout``.
            at: the file to lock instead of ``path`` (``path`` resolved the
                way the daemon will see it, by ``DaemonContext``).
            owner: the uid the daemon will run as: its file from a previous
                run is accepted in a shared sticky directory.

        Raises:
            AlreadyRunningError: the lock is still held when the time is up, or
                the file names a live lockfile daemon (``lockfile_holder``).
            StartupError: the file cannot be opened.
        """
        from pathlib import Path

        from ..exceptions import AlreadyRunningError, StartupError
        from ._pep3143_pidfile import lockfile_holder, widen_to_lockfile_error
        from ._pidfile import acquire_pidfile

        # Loaded with the acquire side, before a DaemonContext's chroot or drop, in
        # which read_pid() and is_locked() may run where an import can fail.
        from ._pidfile_status import read_pidfile  # noqa: F401

        self.check_path()
        wait = self.acquire_timeout if timeout is None else timeout
        if wait is None:
            wait = self.timeout
        deadline = time.monotonic() + (wait or 0.0)
        while True:
            target = self.path if at is None else at
            try:
                legacy = lockfile_holder(target)
                if legacy is not None:
                    raise AlreadyRunningError(target, legacy)
                self._held = acquire_pidfile(Path(target), owner=owner)
            except AlreadyRunningError as exc:
                # flock cannot wait with a timeout; a short poll can.
                if not wait or wait <= 0 or time.monotonic() >= deadline:
                    widen_to_lockfile_error(exc, waited=bool(wait and wait > 0))
                    raise
                time.sleep(0.05)
            except StartupError as exc:
                widen_to_lockfile_error(exc, waited=False)
                raise
            else:
                return

    def unlock(self) -> None:
        """Give back what :meth:`lock` took: the file is removed if it holds our pid, and unlocked.

        ``DaemonContext.open()`` calls it when it fails before it entered the
        pidfile: a subclass's ``release()`` pairs with its ``acquire()``, which
        never ran.
        """
        held, self._held = self._held, None
        if held is not None:
            held.remove()

    def check_path(self) -> None:
        """Refuse a path that can name no file, in the words ``run(pidfile=...)`` uses.

        An empty one was taken for the current directory ("pidfile / is a
        directory"), and a NUL byte raised Python's own ValueError.

        Raises:
            StartupError: the path is empty or holds a NUL byte.
        """
        from ..exceptions import StartupError
        from ._pep3143_pidfile import widen_to_lockfile_error

        problem = None
        if not self.path:
            problem = "must not be empty"
        elif "\0" in self.path:
            problem = f"must not contain a NUL byte: {self.path!r}"
        if problem is not None:
            exc = StartupError(f"pidfile: {problem}")
            widen_to_lockfile_error(exc, waited=False)
            raise exc

    def keep_from_forked_children(self) -> None:
        """Let every child this process forks from now on give up the lock at once.

        Called by ``DaemonContext.open()`` in the daemon, after its own forks
        (not by ``acquire()``: a program that takes the lock and then forks
        away by itself means the child to keep it).

        A forked child (a prefork worker, multiprocessing's fork context)
        shares the locked descriptor: outliving a killed daemon, it held the
        lock, and the next start said "already running" for a dead pid. The
        child closes its copy and forgets the file, so its ``close()`` (at
        exit, by ``atexit``) leaves the daemon's pidfile alone.
        """
        held = self._held
        if held is None:
            return
        opened = os.fstat(held.fd)

        def forget() -> None:
            if self._held is not held:
                return  # released (or acquired again) before this fork
            self._held = None
            close_if_same(held.fd, opened)
            held.fd = -1

        os.register_at_fork(after_in_child=forget)

    @property
    def held(self) -> Pidfile | None:
        """The locked file while this object holds it."""
        return self._held


class PIDLockFile(PidFile):
    """lockfile's ``PIDLockFile(path, threaded=False, timeout=None)``, as this ``PidFile``.

    ``threaded`` only made lockfile's lock names unique per thread; a pid lock
    has none (lockfile's ``PIDLockFile`` forces it off too), so it is accepted
    and ignored. ``unique_name`` (the path) and ``lock_file`` (the absolute
    path plus ``.lock``) are lockfile's attributes, with its values: that
    file is never created, by lockfile's ``PIDLockFile`` or here.
    """

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        threaded: bool = False,
        timeout: float | None = None,
    ) -> None:
        super().__init__(path, timeout=timeout)
        self.unique_name = self.path
        self.lock_file = os.path.abspath(self.path) + ".lock"


class TimeoutPIDLockFile(PIDLockFile):
    """python-daemon's ``TimeoutPIDLockFile``, as this ``PidFile``.

    ``TimeoutPIDLockFile(path, acquire_timeout=None, threaded=False, timeout=None)``:
    python-daemon passes every argument after ``acquire_timeout`` on to
    lockfile's ``PIDLockFile``, by position or by name: they mean here what
    they mean there (see :class:`PIDLockFile`). ``acquire_timeout`` is the
    wait of ``acquire()`` (and of ``DaemonContext.open()``), ``timeout`` the
    one used when it is None.
    """

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        acquire_timeout: float | None = None,
        threaded: bool = False,
        timeout: float | None = None,
    ) -> None:
        super().__init__(path, threaded, timeout)
        self.acquire_timeout = acquire_timeout
