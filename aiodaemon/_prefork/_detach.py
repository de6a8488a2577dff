"""Detach phase: the classic double fork, done synchronously before any loop or thread.

Never imports asyncio (tests enforce it): forking a process that has an event
loop or threads copies their state half-way, and the daemon inherits locks held
by threads that no longer exist. What the launching process does once it has
forked (wait for the daemon's verdict, exit with it) is ``_launcher``'s.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import stat
import sys
import time

from ..exceptions import ExitCode, StartupError
from ._launcher import WAIT_SIGNALS, exit_with_verdict
from ._messages import flush_stdio, say
from ._readiness import ReadinessPipe, see_daemon_through
from ._stdfds import text_stream

# Annotations only: aiodaemon.pep3143 imports this module into synchronous
# programs, which should not pay for typing and pathlib.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import NoReturn

    from ._readiness import LaunchResult

__all__ = [
    "close_if_same",
    "close_in_forked_children",
    "close_inherited_fds",
    "detach",
    "enter_workdir",
    "fork_daemon",
    "is_supervised",
    "python_threads",
    "redirect_outputs",
    "redirect_stdio",
    "stdin_is_socket",
    "stop_closing_in_forked_children",
    "warn_unseen_threads",
]

#: Highest fd number ``close_range`` is asked to reach: far beyond any RLIMIT_NOFILE.
_FD_CEILING = 2**31 - 1

#: Set by systemd (and compatible managers) in the environment of what they supervise.
_SUPERVISOR_VARIABLES = ("NOTIFY_SOCKET", "LISTEN_FDS", "INVOCATION_ID")

#: Held across the detach's first fork: the launcher's wait's, whatever else of
#: ``_inherited.LIFECYCLE_SIGNALS`` a process group may be sent (``kill -USR1 -PGID``),
#: and the job-control stops (Ctrl-Z; a background job's terminal I/O) that
#: would stop the first child before it forked the daemon.
_FORK_HELD = (
    *WAIT_SIGNALS,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
)


def is_supervised(env: Mapping[str, str] | None = None) -> bool:
    """Whether a service manager runs us, so ``detach=None`` stays in the foreground.

    True with ``NOTIFY_SOCKET``, ``LISTEN_FDS`` or ``INVOCATION_ID`` set, or as
    PID 1 (a container's init). Call it before the listeners are acquired:
    socket activation removes ``LISTEN_FDS`` from the environment.
    """
    environ = os.environ if env is None else env
    return os.getpid() == 1 or any(environ.get(name) for name in _SUPERVISOR_VARIABLES)


def stdin_is_socket() -> bool:
    """Whether fd 0 is a socket: how inetd (and systemd's ``Accept=yes``) start a server."""
    try:
        return stat.S_ISSOCK(os.fstat(0).st_mode)
    except OSError:
        return False


def close_inherited_fds(keep: Iterable[int]) -> None:
    """Close every descriptor from 3 up, except ``keep``.

    One ``close_range`` call per gap between kept fds, so the cost does not grow
    with ``RLIMIT_NOFILE`` (a loop over a 1,048,576-fd range takes a second).
    """
    low = 3
    for fd in sorted({fd for fd in keep if fd >= 3}):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _past_open_fds())


def _past_open_fds() -> int:
    """One past the highest descriptor open here (``/proc/self/fd``); without /proc, the ceiling.

    Where ``close_range`` is refused (a container's seccomp profile, a kernel
    before 5.9), ``os.closerange`` closes each number in turn: up to
    :data:`_FD_CEILING`, minutes, and a detached start failed "not ready".
    """
    try:
        return min(max(map(int, os.listdir("/proc/self/fd"))) + 1, _FD_CEILING)
    except (OSError, ValueError):
        return _FD_CEILING


def redirect_stdio(stdout: int | None, stderr: int | None, stdin: int | None = None) -> None:
    """Point fds 0-2 at ``/dev/null`` or the given files and rebind ``sys`` streams.

    Args:
        stdout: an open fd for fd 1, or None for ``/dev/null``.
        stderr: an open fd for fd 2, or None for ``/dev/null``.
        stdin: an open fd for fd 0, or None for ``/dev/null``. ``sys.stdin``
            stays when it reads this very fd (``stdin=sys.stdin``).
    """
    # Only when needed: after a chroot there may be no /dev/null to open.
    null = os.open(os.devnull, os.O_RDWR | os.O_NOCTTY) if None in (stdin, stdout, stderr) else -1
    os.dup2(null if stdin is None else stdin, 0)
    # sys.stdin stays when it reads that file (stdin=sys.stdin): it reads
    # ahead, so it holds input the program has not consumed yet (all but the
    # line it read before open()), which a new stream on fd 0 would skip.
    if stdin is None or not _reads_fd(sys.stdin, stdin):
        sys.stdin = text_stream(0, "r", sys.stdin, sys.__stdin__)
    redirect_outputs(null if stdout is None else stdout, null if stderr is None else stderr)
    if null > 2:
        os.close(null)


def _reads_fd(stream: object, fd: int) -> bool:
    """Whether ``stream`` is an open file object on ``fd``."""
    fileno = getattr(stream, "fileno", None)
    if fileno is None:
        return False
    try:
        return bool(fileno() == fd)
    except (OSError, ValueError):  # closed, or no file (a StringIO)
        return False


def _open_devnull() -> int:
    """``/dev/null``, opened for reading and writing (close-on-exec).

    Raises:
        StartupError: it is missing, or is not a character device (a regular
            file there would keep what the daemon discards, filling the disk).
    """
    try:
        fd = os.open(os.devnull, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise StartupError(f"cannot open {os.devnull}: {exc.strerror or exc}") from exc
    if not stat.S_ISCHR(os.fstat(fd).st_mode):
        os.close(fd)
        raise StartupError(f"cannot use {os.devnull}: not a character device")
    return fd


def redirect_outputs(stdout: int | None, stderr: int | None) -> None:
    """Point fd 1 and/or fd 2 at the given fds (None leaves that one alone)."""
    # Never raising: a stream the program closed, or one whose target fails
    # (a reader gone, a full disk), must not end the start it is being replaced for.
    flush_stdio()
    # The old wrappers may buffer text for the terminal; new ones write through
    # to the new targets line by line, so a crash loses nothing.
    if stdout is not None:
        os.dup2(stdout, 1)
        sys.stdout = text_stream(1, "w", sys.stdout, sys.__stdout__, line_buffering=True)
    if stderr is not None:
        os.dup2(stderr, 2)
        sys.stderr = text_stream(
            2, "w", sys.stderr, sys.__stderr__, line_buffering=True, errors="backslashreplace"
        )


def close_in_forked_children(fd: int) -> None:
    """Close ``fd`` in every child this process forks from now on; it stays open here.

    For what only the daemon may hold: its pidfile's lock, its control and
    health sockets, the readiness pipe. A child the program forks (multiprocessing's fork context,
    ``os.fork``) that outlived the daemon kept both: the next ``start`` said
    "already running" for a dead pid, and ``status`` found a daemon in the
    child. The ``listen=`` sockets stay: handing them to forked workers is how
    pre-fork servers work. An exec'd child never had them (close-on-exec).
    """
    global _daemon_only_registered
    _daemon_only[fd] = os.fstat(fd)
    if not _daemon_only_registered:
        _daemon_only_registered = True
        os.register_at_fork(after_in_child=_close_daemon_only)


def stop_closing_in_forked_children(fds: Iterable[int]) -> None:
    """Forget ``fds`` (see :func:`close_in_forked_children`), as they are closed here.

    A fork hook cannot be removed: a hook of a run that ended closed, in every
    child of a later ``run()`` in the process (its detach's fork included), the
    fd that took the number of the earlier pidfile, when that file was created
    on the freed inode (the same ``fstat``): the second daemon's pidfile.
    """
    for fd in fds:
        _daemon_only.pop(fd, None)


#: fd -> the file it was opened on, for :func:`close_in_forked_children`.
_daemon_only: dict[int, os.stat_result] = {}
_daemon_only_registered = False


def _close_daemon_only() -> None:
    for fd, opened in _daemon_only.items():
        close_if_same(fd, opened)
    _daemon_only.clear()


def close_if_same(fd: int, opened: os.stat_result) -> None:
    """Close ``fd`` if it is still open on the file ``opened`` describes.

    Its owner may have closed it since, and the number be reused for another file.
    """
    try:
        if os.path.samestat(os.fstat(fd), opened):
            os.close(fd)
    except OSError:
        pass


def enter_workdir(workdir: str | None, umask: int, *, detached: bool) -> None:
    """Change directory and set the umask, so no mount point stays busy and modes are ours.

    Args:
        workdir: the directory; None (not given): ``/`` for a detached daemon,
            and none for one in the foreground, which stays where its
            supervisor put it (systemd's ``WorkingDirectory=``, a container's
            ``WORKDIR``), as any program it runs would.
        umask: the daemon's umask.
        detached: whether the daemon detached.
    """
    if workdir is not None or detached:
        os.chdir(workdir or "/")
    os.umask(umask)


# --- threads the fork leaves behind ------------------------------------------------
# The fork copies only the thread that calls it. A thread Python started is
# refused by run() (and warned of by pep3143, whose python-daemon programs
# may start one); a C library's thread (OpenBLAS under numpy, gRPC) cannot
# be refused, as most such programs would never start: it is warned of,
# with the remedy (docs/lifecycle.md).

#: Seconds a task left by a thread just joined gets to end before it is taken
#: for a C library's thread; paid only when one is seen.
_TASK_END_WAIT = 0.1


def warn_unseen_threads(remedy: str) -> None:
    """Warn of threads Python does not know of; ``remedy`` says where to import their library."""
    unseen = _unseen_threads()
    # A thread joined a moment ago (the program's own, an earlier run's
    # backstop) lets go of its kernel task a moment after join() returns:
    # counted then, it was taken for a C library's. Such a task ends at once.
    deadline = time.monotonic() + _TASK_END_WAIT
    while unseen > 0 and time.monotonic() < deadline:
        time.sleep(0.002)
        unseen = _unseen_threads()
    if unseen > 0:
        one = unseen == 1
        threads, it = ("1 thread", "it") if one else (f"{unseen} threads", "they")
        say(
            f"warning: {threads} Python does not know of {'runs' if one else 'run'}"
            " (a C library's, started at its import); the detach's fork leaves"
            f" {'it' if one else 'them'} behind, and the daemon may hang on a lock {it}"
            f" held: import that library {remedy}"
        )


def python_threads() -> list[str]:
    """The names of Python's threads a fork leaves behind (none if threading is unused).

    All but the calling one, which goes on in the child: from a thread other
    than the main one (a ``DaemonContext.open()`` there), the main one too.
    """
    threading = sys.modules.get("threading")
    if threading is None:
        return []
    current = threading.current_thread()
    return [t.name for t in threading.enumerate() if t is not current]


def _unseen_threads() -> int:
    """How many of this process's tasks are no thread of Python's (0 without /proc)."""
    threading = sys.modules.get("threading")
    known = 1 if threading is None else threading.active_count()
    try:
        return len(os.listdir("/proc/self/task")) - known
    except OSError:
        return 0  # no /proc: nothing to tell them by


def detach(
    *,
    keep: Iterable[int],
    stdout: int | None,
    stderr: int | None,
    on_ready: Callable[[int], None],
    on_failure: Callable[[LaunchResult], None],
    start_timeout: float | None = None,
    shutdown_timeout: float = 30.0,
    pidfile: str | None = None,
    foreground: str = "aiodaemon run",
    launcher_mask: Iterable[int] | None = None,
    leave_to_daemon: Callable[[], None] | None = None,
) -> ReadinessPipe:
    """Double-fork into a daemon; only the daemon returns.

    The launching process waits for the daemon's verdict and exits with it:
    ``on_ready(pid)`` then exit 0, or ``on_failure(result)`` then the daemon's code.

    Args:
        keep: descriptors to keep open in the daemon besides stdio.
        stdout: fd for the daemon's fd 1, or None for ``/dev/null``.
        stderr: fd for the daemon's fd 2, or None for ``/dev/null``.
        on_ready: run in the launcher once the daemon is ready.
        on_failure: run in the launcher when the daemon failed or died first.
        start_timeout: seconds the daemon has to become ready, from the fork;
            then the launcher stops it (SIGTERM, SIGKILL after
            ``shutdown_timeout``) and fails.
        shutdown_timeout: the daemon's own, for that stop.
        pidfile: the daemon's, named in how to stop it after a Ctrl-C.
        foreground: how to run it in the foreground instead, named when the
            detach is refused (see :func:`fork_daemon`).
        launcher_mask: the launcher's signal mask while it waits and after;
            None: the one at the call (the daemon keeps that one).
        leave_to_daemon: run in the launcher right after the fork, to close
            what the daemon alone keeps (see :func:`fork_daemon`).

    Returns:
        The daemon's end of the readiness pipe.

    Raises:
        StartupError: nothing was started: no ``/dev/null``, the readiness
            pipe or the first fork failed, or that fork is PID 1 of a new pid
            namespace.
    """
    keep = list(keep)
    # Opened before the fork: without a /dev/null (a bare /dev in a container)
    # the start fails here, in one line, with nothing started.
    null = _open_devnull()
    try:
        pipe = fork_daemon(
            on_ready=on_ready,
            on_failure=on_failure,
            start_timeout=start_timeout,
            shutdown_timeout=shutdown_timeout,
            pidfile=pidfile,
            foreground=foreground,
            launcher_mask=launcher_mask,
            leave_to_daemon=leave_to_daemon,
            own_group=True,
        )
    except BaseException:
        os.close(null)
        raise
    # Redirect first: the stdio files' own fds are among those closed next.
    redirect_stdio(null if stdout is None else stdout, null if stderr is None else stderr, null)
    os.close(null)
    # No pipe left if the launcher died before our pid reached it (killed, or
    # Ctrl-C: it said we go on starting): we do, with nobody to report to.
    close_inherited_fds([*keep, *pipe.fds()])
    return pipe


def fork_daemon(
    *,
    on_ready: Callable[[int], None],
    on_failure: Callable[[LaunchResult], None],
    start_timeout: float | None = None,
    shutdown_timeout: float = 30.0,
    pidfile: str | None = None,
    foreground: str = "aiodaemon run",
    launcher_mask: Iterable[int] | None = None,
    leave_to_daemon: Callable[[], None] | None = None,
    own_group: bool = False,
    on_stall: Callable[[], None] | None = None,
    quiet_success: bool = False,
) -> ReadinessPipe:
    """Fork, ``setsid``, fork: only the daemon returns, holding its end of the readiness pipe.

    The launching process waits for the daemon's verdict and exits with it
    (see :func:`detach`, also for the timeouts). The daemon's descriptors and
    stdio are left as they are. The launcher and the session leader keep
    none of what the daemon acquired: held on, a listening socket outlived a
    daemon stopped before it was ready by as long as they took to word its
    verdict, and a ``start`` racing that stop failed "Address already in
    use". The leader closes all but its pipes; the launcher runs
    ``leave_to_daemon``, which must not raise (its errors are ignored).

    ``own_group``: the daemon leads a process group of its own (aiodaemon's);
    else it stays in the session leader's, as python-daemon's does (the
    PEP 3143 drop-in).

    ``on_stall``: run in the launcher when the daemon announced a wait
    (:meth:`ReadinessPipe.note_waiting`) and gave no verdict within a second
    (see :func:`wait_ready`). ``quiet_success``: a daemon that exits with
    status 0 before ready ends the start with 0 and nothing said (see
    :func:`see_daemon_through`).

    Raises:
        StartupError: in the launching process, with nothing started: the
            readiness pipe or the first fork failed, or the first child was
            PID 1 of a new pid namespace (``unshare --pid`` without
            ``--fork``), whose exit would kill the daemon; the refusal names
            ``foreground``, the way to run it in the foreground instead.
    """
    # Text still buffered would be written twice, once by each process. A
    # stream that cannot take it (closed, a reader gone, a full disk) keeps it:
    # the launcher ends with os._exit, the daemon replaces the stream.
    flush_stdio()
    try:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    except OSError as exc:
        raise StartupError(f"cannot create the readiness pipe: {exc.strerror}") from exc
    # Every object the launcher made is frozen for the forks: a garbage
    # collection in the daemon would otherwise write to each of them, copying
    # page after page (copy-on-write) while the launcher waits, several ms on the
    # way to ready. The daemon thaws them once the launcher has its verdict.
    gc.freeze()
    # The start timeout runs from here, for the launcher and the daemon alike.
    deadline = None if start_timeout is None else time.monotonic() + start_timeout
    # Made before the fork: the launcher and the first child must not fail
    # between it and their os._exit (see _first_child).
    timeouts = (start_timeout, deadline, shutdown_timeout)
    pipe = ReadinessPipe(write_fd, thaw=True, deadline=deadline)
    # Held from here in the launcher until it waits (see exit_with_verdict): one
    # arriving before its handlers are in place would end it without a word.
    # And in the first child until its setsid: still in the terminal's process
    # group, it gets a Ctrl-C (a Ctrl-\, a hang-up, a group's SIGTERM) meant for
    # the launcher, whose default action ended it before it forked the daemon,
    # and a Ctrl-Z, which stopped it there: the daemon not forked until `fg`,
    # its start timeout running all the while.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_HELD)
    try:
        first = os.fork()
    except OSError as exc:  # EAGAIN: RLIMIT_NPROC or the pid limit; ENOMEM
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        gc.unfreeze()
        os.close(read_fd)
        os.close(write_fd)
        raise StartupError(f"cannot fork the daemon: {exc.strerror}{_nproc_note(exc)}") from exc
    if first:
        if leave_to_daemon is not None:
            _leave_to_daemon(leave_to_daemon)
        waits_with = mask if launcher_mask is None else launcher_mask
        exit_with_verdict(
            first,
            read_fd,
            write_fd,
            on_ready,
            on_failure,
            timeouts,
            pidfile,
            waits_with,
            on_stall=on_stall,
        )
        # Back only when the first child forked no daemon (see exit_with_verdict):
        # nothing runs, and the caller goes on as after a failed fork.
        gc.unfreeze()
        os.close(read_fd)
        from ._init import namespace_refusal  # only on this rare path

        refusal = StartupError(namespace_refusal(foreground))
        # Last: a Ctrl-C held since the fork is the caller's now, with nothing started.
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise refusal
    _first_child(read_fd, pipe, mask, quiet_success)
    if own_group:
        # A process group of its own, led by the daemon (still no session
        # leader, so it never gets a terminal): whatever it starts and does
        # not move out (fork-pool workers, subprocesses) is in that group,
        # which `aiodaemon stop` kills with it when it has to SIGKILL it, as
        # systemd's KillMode=control-group would. In the session leader's
        # group, led by nobody once that leader is gone, it would be nobody's
        # to kill. It cannot fail: the daemon leads no session.
        os.setpgid(0, 0)
    # The daemon is not a session leader, so opening a tty can never make it
    # the controlling terminal again.
    try:
        # The launcher learns that the daemon died before ready from the end of
        # file: a child the program forks meanwhile (a worker pool started in a
        # startup hook) must not hold the write end open for as long as it lives.
        for fd in pipe.fds():
            close_in_forked_children(fd)
        # Again, from the daemon itself: a launcher killed meanwhile shows here
        # (EPIPE), and the daemon then keeps its start_timeout on its own.
        pipe.announce(os.getpid())
    except BaseException as exc:
        _end_fork_copy(exc, verdict_fd=write_fd)
    return pipe


def _first_child(
    read_fd: int, pipe: ReadinessPipe, mask: Iterable[int], quiet_success: bool
) -> None:
    """Start a new session and fork the daemon; return only in the daemon.

    The session leader then stays until the daemon has its verdict: the
    daemon is its child, so it alone learns how a daemon that died unready
    ended (see :func:`see_daemon_through`). ``mask``: the signal mask from
    before the fork, the daemon's; ``quiet_success``: see :func:`fork_daemon`.
    """
    try:
        os.close(read_fd)
        if os.getpid() == 1:
            # unshare --pid without --fork: the launcher stayed outside, and its
            # first child is the new namespace's init. The kernel kills every
            # process of the namespace when that init exits, as this one does
            # once the daemon is ready: the start said "ready", its daemon dead.
            pipe.refuse_namespace_init()
            os._exit(1)
        # A new session: no controlling terminal, immune to the launcher's hangups.
        os.setsid()
        # What reached us before it was sent to the launcher's process group:
        # the launcher's to act on, not the daemon's (a fork's pending set is
        # empty, so the daemon never sees it). Only now is nothing left that
        # could end us before the daemon exists.
        _drop_pending(_FORK_HELD)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        try:
            released, release = os.pipe2(os.O_CLOEXEC)
        except OSError:
            released = release = -1  # the leader goes at once, as it did before
        try:
            second = os.fork()
        except OSError as exc:
            # The launcher reads this verdict like the daemon's own.
            pipe.fail(ExitCode.FAILURE, f"cannot fork the daemon: {exc.strerror}{_nproc_note(exc)}")
            os._exit(1)
        if not second:
            if released >= 0:
                os.close(released)
                pipe.leader = release
            return
        if released >= 0:
            os.close(release)
        # The daemon's own now: the leader outlives a daemon that dies unready
        # (see fork_daemon). The lock of the pidfile is not released: an flock
        # belongs to the open file, shared with the daemon, not to this copy.
        close_inherited_fds([*pipe.fds(), released])
        # The daemon's pid is announced here, before the launcher reaps us: a
        # start_timeout that runs out before the daemon was scheduled must
        # still find whom to stop (unstopped, it went on to ready, its pidfile
        # removed by the launcher that had reported it failed).
        pipe.announce(second)
        if released >= 0:
            see_daemon_through(second, released, pipe, quiet_success=quiet_success)
    except BaseException as exc:
        # The daemon, if forked, announces itself and gives its own verdict.
        _end_fork_copy(exc)
    # os._exit skips atexit handlers and buffer flushes that belong to the
    # launcher, not to this transient copy.
    os._exit(0)


def _leave_to_daemon(close: Callable[[], None]) -> None:
    """Run ``close`` in the launcher; whatever it raises, the launcher goes on to wait.

    Raised into the caller's stack, an error would unwind the cleanups there,
    which belong to the daemon (see _end_fork_copy).
    """
    try:  # noqa: SIM105 (no contextlib: see _readiness)
        close()
    except Exception:
        pass


def _drop_pending(signals: Iterable[int]) -> None:
    """Discard the pending ones among ``signals`` (blocked), leaving their handlers alone."""
    pending = signal.sigpending()  # the one system call when none is, as usual
    for signum in signals:
        if signum in pending:
            signal.sigtimedwait((signum,), 0)


def _end_fork_copy(exc: BaseException, verdict_fd: int | None = None) -> NoReturn:
    """End a forked copy that failed before it could report (out of memory, a Ctrl-C).

    It must not unwind the launcher's stack, whose cleanups (a pidfile's
    removal, a socket's unlink) belong to the daemon, nor print on the
    launcher's terminal: the launcher words the end. ``verdict_fd``: given
    by the daemon, whose failure is the start's, to tell the launcher why.
    """
    if verdict_fd is not None and isinstance(exc, MemoryError):
        try:  # noqa: SIM105 (no contextlib: see _readiness)
            # A constant: no memory needed.
            os.write(verdict_fd, b"E1 out of memory while starting the daemon\n")
        except OSError:
            pass
    os._exit(1)


def _nproc_note(exc: OSError) -> str:
    """RLIMIT_NPROC named when an ``EAGAIN`` from ``fork`` is that limit reached."""
    if exc.errno != errno.EAGAIN:
        return ""
    from ._nproc import nproc_note  # only a refused fork pays for it

    return nproc_note()
