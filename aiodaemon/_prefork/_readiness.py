"""The readiness handshake between the launching process and its daemon.

One pipe, written by the daemon, read by the launcher. Messages are lines:
``P<pid>`` (the daemon exists), ``R`` (ready), ``E<code> <message>`` (it
ended before ready: a failure, or ``E0`` when the program chose to end with
``sys.exit(0)``; ``E<code>`` alone: it ended so with nothing to say), ``N``
(no daemon: the first child found itself PID 1 of a new pid namespace, and
forked none), ``W`` (the daemon starts a wait that may last: the launcher
says so if no verdict follows within :data:`STALL_NOTE` seconds). End of
file with no ``R``, ``E`` or ``N`` means the daemon died first.

Only the first ``P`` counts: the intermediate child writes it as root, before
it exits and before the daemon runs any of the program's code. The daemon
keeps the write end through its startup hooks, which run as the account it
dropped to; a ``P`` written then (a compromised account naming root's sshd)
would have root's launcher stop or SIGKILL that process instead of the daemon.
For the same reason the launcher takes a pidfd of that pid as soon as it reads
it, while the daemon, not yet past its fork, holds the number: an account
that made the daemon exit early (its pipe kept open by a child) would
otherwise have its number free for another process by the time the start
fails, and the launcher stop that one.
Synchronous and asyncio-free: the launcher never runs an event loop. No
``contextlib`` either: ``aiodaemon.pep3143`` imports this module into
synchronous programs, where importing it would cost ~0.4 ms of their start.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import signal
import time

from ..exceptions import ExitCode, StartupError
from ._messages import seconds_shown

# Annotations only: aiodaemon.pep3143 imports this module into synchronous programs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import TypeAlias

    from ._kill import Killed

    #: A pidfd taken when the daemon announced itself; None: it was gone by
    #: then (nothing to stop); a StartupError: the kernel gives none.
    Pidfd: TypeAlias = "int | StartupError | None"

__all__ = [
    "UNREADY_EXIT_GRACE",
    "LaunchResult",
    "ReadinessPipe",
    "WaitInterrupted",
    "announced_pid",
    "hold_gc",
    "open_pidfd",
    "readable",
    "release_gc",
    "see_daemon_through",
    "stop_unready",
    "wait_exited",
    "wait_gone",
    "wait_ready",
]

#: Seconds an unready daemon gets past its shutdown_timeout to exit on SIGTERM
#: before :func:`stop_unready` SIGKILLs it (its own deadline ends it first).
UNREADY_EXIT_GRACE = 1.0

#: Seconds :func:`wait_gone` waits for what it SIGKILLed to be gone, so that
#: the ports they held are free when the start returns.
_KILL_WAIT = 5.0

#: Whether :func:`hold_gc` turned the collector off (and so must turn it back on).
_gc_held = False


def hold_gc() -> None:
    """Freeze every object made so far and pause the collector until the verdict.

    The start-up's imports allocate tens of thousands of objects that live as
    long as the process: collecting them again and again finds nothing and
    costs every start ~2 ms (benchmarks/detach.py --startup). Frozen objects
    are also never written by a collection in the daemon, which would copy
    their pages while the launcher still shares them (copy-on-write).
    :func:`release_gc` undoes both once the launcher has its verdict. A
    program that turned the collector off itself keeps it off.
    """
    global _gc_held
    gc.freeze()
    if gc.isenabled():
        gc.disable()
        _gc_held = True


def release_gc() -> None:
    """Thaw what :func:`hold_gc` froze and turn the collector back on if it paused it."""
    global _gc_held
    gc.unfreeze()
    if _gc_held:
        _gc_held = False
        gc.enable()


class ReadinessPipe:
    """The daemon's end of the handshake; every method is a no-op once reported."""

    def __init__(
        self, fd: int | None, *, thaw: bool = False, deadline: float | None = None
    ) -> None:
        """The write end ``fd`` (None: no launcher waits, as in the foreground).

        Args:
            fd: the pipe's write end, or None.
            thaw: undo the start-up's :func:`hold_gc` once the verdict is given.
            deadline: the launcher's ``time.monotonic()`` deadline for ready,
                taken before the fork; None: no start timeout.
        """
        self.fd = fd
        self._thaw = thaw
        #: when the start times out (``time.monotonic()``); None: never, or not ours.
        self.deadline = deadline
        #: the write end that releases the session leader waiting on the daemon
        #: (see :func:`see_daemon_through`); None where nobody waits so.
        self.leader: int | None = None

    def __enter__(self) -> ReadinessPipe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pending(self) -> bool:
        """Whether the launcher is still waiting for a verdict."""
        return self.fd is not None

    def fds(self) -> list[int]:
        """The descriptors the daemon keeps open for the handshake until its verdict."""
        return [fd for fd in (self.fd, self.leader) if fd is not None]

    def announce(self, pid: int) -> None:
        """Tell the launcher which process is the daemon."""
        self._write(f"P{pid}\n")

    def ready(self) -> bool:
        """Release the launcher with success; False if its deadline has passed.

        A launcher descheduled past its deadline still reads what is on the
        pipe, so an ``R`` written late would pass for one in time. Past the
        deadline nothing is written and the verdict is still owed: the start
        timeout (due by now, see ``StartDeadline``) sends "not ready". The
        monotonic clock is the same in both processes.
        """
        late = self.deadline is not None and time.monotonic() > self.deadline
        if late and self.fd is not None:
            return False
        # Before the R: the launcher, told ready, reaps the session leader, so
        # its start returns with only the daemon left.
        self._release_leader()
        self._write("R\n")
        self.close()
        return True

    def refuse_namespace_init(self) -> None:
        """Tell the launcher no daemon was forked: this first child is PID 1 of a new pid namespace.

        The kernel kills every process of a pid namespace when its PID 1
        exits, so a daemon forked here would die with this transient process.
        The launcher words the refusal (it knows what to offer instead).
        """
        self._write("N\n")
        self.close()

    def fail(self, code: int, message: str) -> None:
        """Release the launcher with ``code`` and a one-line ``message`` for its stderr."""
        line = " ".join(message.split()) or "startup failed"
        self._write(f"E{int(code)} {line}\n")
        self.close()

    def end(self, code: int) -> None:
        """Release the launcher with ``code`` and nothing to say: the program ended itself.

        ``sys.exit()`` (or ``sys.exit(code)``) before ready, where the
        interpreter prints nothing either.
        """
        self._write(f"E{int(code)}\n")
        self.close()

    def note_waiting(self) -> None:
        """Tell the launcher a wait that may last begins (a pidfile's lock): it explains a stall."""
        self._write("W\n")

    def close(self) -> None:
        """Drop the pipe without a verdict (or after one)."""
        self._release_leader()
        if self.fd is not None:
            try:  # noqa: SIM105 (no contextlib: see the module docstring)
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        if self._thaw:
            # Ready (or failed): what was frozen for the start-up may be
            # collected again (see hold_gc).
            self._thaw = False
            release_gc()

    def _release_leader(self) -> None:
        """Tell the session leader the launcher has its verdict (or is gone): it may go."""
        if self.leader is not None:
            try:  # noqa: SIM105 (no contextlib: see the module docstring)
                os.write(self.leader, b".")
            except OSError:
                pass
            try:  # noqa: SIM105 (no contextlib: see the module docstring)
                os.close(self.leader)
            except OSError:
                pass
            self.leader = None

    def _write(self, text: str) -> None:
        if self.fd is None:
            return
        data = text.encode("utf-8", "backslashreplace")
        # Short messages on a pipe are atomic below PIPE_BUF; loop for long errors.
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except BrokenPipeError:
            # The launcher is gone (killed by its user): nobody to tell.
            self.close()


class LaunchResult:
    """What the launcher learned: the daemon's pid, whether it became ready, and why not."""

    # A plain class, not a dataclass: importing dataclasses (and inspect with
    # it) would cost aiodaemon.pep3143's synchronous programs ~5 ms.
    __slots__ = ("code", "message", "namespace_init", "pid", "pidfd", "ready", "timed_out")

    def __init__(
        self,
        pid: int | None,
        ready: bool,
        code: int,
        message: str,
        timed_out: bool = False,
        *,
        pidfd: Pidfd = None,
        namespace_init: bool = False,
    ) -> None:
        self.pid = pid
        self.ready = ready
        self.code = code
        self.message = message
        #: the daemon did not report within ``start_timeout``: it still runs.
        self.timed_out = timed_out
        #: a pidfd of ``pid`` taken when it was announced (see :func:`wait_ready`).
        self.pidfd = pidfd
        #: the first child was PID 1 of a new pid namespace (``unshare --pid``
        #: without ``--fork``) and forked no daemon: nothing was started.
        self.namespace_init = namespace_init

    def __repr__(self) -> str:
        return (
            f"LaunchResult(pid={self.pid!r}, ready={self.ready!r}, "
            f"code={self.code!r}, message={self.message!r}, timed_out={self.timed_out!r})"
        )


class WaitInterrupted(KeyboardInterrupt):
    """Ctrl-C while the launcher waited; ``pid``: the daemon's, if it had announced it."""

    def __init__(self, pid: int | None) -> None:
        super().__init__()
        self.pid = pid


#: Longest single poll() of a wait: any timeout is waited in slices of this.
_SLICE = 3600.0


def readable(fd: int, timeout: float) -> bool:
    """Whether ``fd`` is readable (or at its end) within ``timeout`` seconds.

    poll, not select: a launcher that holds over 1,024 descriptors gets the
    pipe (and a pidfd) above select's FD_SETSIZE, where it raises ValueError.
    ``timeout`` is at most about 24 days (poll's limit): wait longer in slices.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _readable_with(fd: int, timeout: float, mask: Iterable[int] | None) -> bool:
    """:func:`readable`, with the signal mask ``mask`` while it waits (None: as it is)."""
    if mask is None:
        return readable(fd, timeout)
    held = signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        return readable(fd, timeout)
    finally:
        # Python's handler of a signal that came meanwhile runs in this call,
        # so its KeyboardInterrupt is raised here, before anything is read.
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


#: Seconds after a ``W`` without a verdict before the launcher says what it waits for.
STALL_NOTE = 1.0

#: The longest message line the launcher reads; the rest of a longer one is dropped.
_LINE_MAX = 65536
#: What the launcher still reads once the start timeout is up: the most a pipe holds.
_LATE_MAX = 1 << 20


def wait_ready(
    fd: int,
    timeout: float | None,
    deadline: float | None,
    *,
    mask: Iterable[int] | None = None,
    on_stall: Callable[[], None] | None = None,
) -> LaunchResult:
    """Block until the daemon reports, its end of the pipe closes, or ``deadline`` passes.

    ``deadline``: the ``time.monotonic()`` at which ``timeout`` (the start
    timeout, named in the verdict) runs out, taken before the fork and given
    to the daemon too (see :meth:`ReadinessPipe.ready`); None with no timeout.
    ``mask``: the signal mask to wait with, for a caller that holds the
    signals that interrupt it at other times: one arriving as the verdict
    comes is then raised before the verdict is read, or not at all here.

    The result's ``pidfd`` is the daemon's, taken when its pid was read: the
    caller stops or waits for the daemon through it (the launcher's exit closes it).

    ``on_stall``: run once when the daemon said ``W`` (a wait of its own
    begins) and no verdict came within :data:`STALL_NOTE` seconds: the
    launcher says what the start waits for, and goes on waiting.

    Raises:
        WaitInterrupted: on Ctrl-C (a KeyboardInterrupt), with the pid read so far.
    """
    buffer = bytearray()
    pid: int | None = None
    watched: Pidfd = None
    #: bytes read since the deadline passed.
    late = 0
    #: when to run on_stall (``time.monotonic()``); None: not now (or done).
    stall_at: float | None = None
    stall_noted = False
    try:
        while True:
            left = _SLICE if deadline is None else deadline - time.monotonic()
            # In slices: poll refuses a wait past ~24 days (OverflowError), and
            # start_timeout=1e12 is a valid "as long as it takes". Looked at
            # even when the time is up: what is on the pipe (the pid to stop,
            # a verdict) is read before the timeout is; but no more than a
            # pipe holds, or a daemon that never stops writing never times out.
            # Not yet announced when the time is up (the first child, or the
            # launcher, descheduled since the fork): the daemon the first child
            # forks next is still to be stopped, so its pid is waited for.
            unnamed = pid is None and late <= _LATE_MAX
            wait = _SLICE if unnamed and left <= 0 else max(0.0, min(left, _SLICE))
            if stall_at is not None:
                wait = min(wait, max(0.0, stall_at - time.monotonic()))
            readable_now = _readable_with(fd, wait, mask)
            if stall_at is not None and not readable_now and time.monotonic() >= stall_at:
                assert on_stall is not None
                stall_at = None
                on_stall()
                continue
            if unnamed and not readable_now:
                continue
            if deadline is not None and left <= 0 and (not readable_now or late > _LATE_MAX):
                assert timeout is not None
                why = f"not ready after {seconds_shown(timeout)} s"
                return LaunchResult(pid, False, 1, why, True, pidfd=watched)
            if not readable_now:
                continue
            chunk = os.read(fd, 4096)
            if deadline is not None and left <= 0:
                late += len(chunk)
            if not chunk:
                break
            buffer += chunk
            if b"\n" not in chunk:
                # A line past its bound is cut there: what the daemon's
                # account writes (its hooks hold the pipe) may not grow root's
                # launcher, nor have it scan a growing line at every read.
                del buffer[_LINE_MAX:]
                continue
            *lines, rest = bytes(buffer).split(b"\n")
            buffer = bytearray(rest[:_LINE_MAX])
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if line.startswith("P") and line[1:].isdigit():
                    # The first: the pid the daemon's own fork gave (see the module docstring).
                    if pid is None:
                        pid = int(line[1:])
                        watched = _watch(pid)
                elif line == "R":
                    return LaunchResult(pid, True, 0, "", pidfd=watched)
                elif line == "W" and on_stall is not None and not stall_noted:
                    # Armed once: more W lines (the daemon's account may write
                    # them) neither put it off nor fill root's terminal.
                    stall_noted = True
                    stall_at = time.monotonic() + STALL_NOTE
                elif line == "N" and pid is None:
                    # Only before any pid: the first child writes it before its
                    # own fork, and the daemon's account must not forge it.
                    return LaunchResult(None, False, 1, "", namespace_init=True)
                elif line.startswith("E"):
                    code_text, _, message = line[1:_LINE_MAX].partition(" ")
                    # E0: the program ended itself before ready (sys.exit(0)).
                    code = int(code_text) if code_text.isdigit() else 1
                    return LaunchResult(pid, False, code, message, pidfd=watched)
    except OSError:
        pass
    except KeyboardInterrupt:
        if isinstance(watched, int):
            os.close(watched)
        raise WaitInterrupted(pid) from None
    who = f"daemon (pid {pid})" if pid else "daemon"
    return LaunchResult(pid, False, 1, f"{who} exited before it was ready", pidfd=watched)


def _watch(pid: int) -> Pidfd:
    """A pidfd of the daemon just announced, None if it is gone, or why the kernel has none."""
    try:
        return open_pidfd(pid)
    except StartupError as exc:
        return exc


def announced_pid(fd: int, timeout: float) -> tuple[int | None, bool]:
    """The pid announced on the pipe, waiting up to ``timeout`` for it; None if none came.

    For a Ctrl-C that cut the launcher short before :func:`wait_ready` read
    the announcement: the first child writes it just after its fork, and a
    signal sent right after the launcher's fork comes before it.

    Returns:
        The pid, and whether the pipe ended without one: then no daemon was
        forked (the daemon and the first child hold the write end until then).
    """
    buffer = b""
    deadline = time.monotonic() + timeout
    try:
        while len(buffer) < 65536 and readable(fd, max(0.0, deadline - time.monotonic())):
            chunk = os.read(fd, 4096)
            if not chunk:
                return None, True
            buffer += chunk
            for raw in buffer.split(b"\n")[:-1]:
                if raw.startswith(b"P") and raw[1:].isdigit():
                    return int(raw[1:]), False
    except OSError:
        pass
    return None, False


def see_daemon_through(
    daemon: int, released: int, pipe: ReadinessPipe, *, quiet_success: bool = False
) -> None:
    """The session leader's wait: until the daemon has its verdict, dies, or the launcher goes.

    The daemon is the leader's child, so only the leader learns how it ended.
    One killed before ready (by the OOM killer, a ``kill -9``, a crash in
    native code) writes no verdict: the leader then writes one for it, with the
    signal or the exit status, where the launcher could otherwise say only that
    it "exited". The daemon releases the leader with a byte on ``released``
    when it gives its verdict (see :meth:`ReadinessPipe.ready`); a launcher
    gone meanwhile (a Ctrl-C) leaves nobody to tell. Without a pidfd (Linux
    before 5.3) the leader goes at once, as it always did.

    ``quiet_success``: an exit with status 0 is the program's own "nothing to
    do" (``os._exit(0)``), given as ``sys.exit(0)`` is: the launcher exits 0
    and says nothing (the PEP 3143 drop-in).
    """
    try:
        watched = os.pidfd_open(daemon)
    except OSError:
        return
    poller = select.poll()
    poller.register(released, select.POLLIN)
    poller.register(watched, select.POLLIN)
    if pipe.fd is not None:
        # No events asked: a pipe's write end reports POLLERR once no reader is left.
        poller.register(pipe.fd, 0)
    while True:
        events = dict(poller.poll())
        if released in events:
            if os.read(released, 1):
                return
            # End of file without the byte: the daemon is dying (or exec'd).
            poller.unregister(released)
        if watched in events:
            break
        if pipe.fd in events:
            return
    try:
        _, status = os.waitpid(daemon, os.WNOHANG)
    except ChildProcessError:
        return  # reaped by a SIGCHLD handler of the program's, or SIGCHLD ignored
    if quiet_success and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        pipe.end(0)
        return
    code, why = _death_verdict(daemon, status)
    pipe.fail(code, why)


def _death_verdict(pid: int, status: int) -> tuple[int, str]:
    """The launcher's exit code and message for a daemon that ended, with ``status``, unready."""
    who = f"daemon (pid {pid})"
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        why = f"{who} was killed by {name} before it was ready"
        if os.WCOREDUMP(status):
            why += " (core dumped)"
        elif signum == signal.SIGKILL:
            why += " (out of memory? or a kill -9)"
        return ExitCode.FAILURE, why
    code = os.waitstatus_to_exitcode(status)
    # 0 would read as a start that succeeded: no verdict was given.
    return code or ExitCode.FAILURE, f"{who} exited with status {code} before it was ready"


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``, or None when it is gone.

    Every signal aiodaemon sends to a process it did not start goes through
    one, so that a pid recycled meanwhile is never hit: where the kernel has
    none, the command fails in one line rather than signal by number.

    Raises:
        StartupError: ``pidfd_open`` is refused (Linux before 5.3, a seccomp
            profile that does not know it) or no descriptor is left.
    """
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            why += " (pidfd_open: Linux 5.3 or later, and a seccomp profile that allows it)"
        raise StartupError(f"cannot watch pid {pid}: {why}") from exc


def stop_unready(
    pid: int, shutdown_timeout: float, pidfd: Pidfd, leader: int = 0
) -> tuple[Killed | None, str | None]:
    """Stop a daemon that never became ready: SIGTERM, then SIGKILL after ``shutdown_timeout``.

    A daemon suspended (SIGSTOP) is continued after the SIGTERM, as ``stop``
    continues it: stopped, it ran none of its shutdown, and only the SIGKILL
    reached it. ``pidfd``: as :attr:`LaunchResult.pidfd`; ``leader``: as
    :func:`wait_gone`'s.

    Returns:
        What the SIGKILL killed when it had to be killed (it did not stop on
        the SIGTERM), else None; and its suspension in words when it was
        suspended, else None.

    Raises:
        StartupError: the kernel gives no pidfd (it is not signalled by number).
    """
    if isinstance(pidfd, StartupError):
        raise pidfd
    if pidfd is None:
        return None, None
    from ._procfs import suspension  # only for a start that timed out
    from ._resume import continue_stopped

    held = suspension(pid)
    try:  # noqa: SIM105 (no contextlib: see the module docstring)
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if held is not None and not held.frozen:
        # After the SIGTERM, so that it is what the daemon finds pending once it runs.
        continue_stopped(pid, pidfd)
    # Its own shutdown is bounded by shutdown_timeout; the second is for its exit.
    killed = wait_gone(pid, shutdown_timeout + UNREADY_EXIT_GRACE, pidfd, leader)
    return killed, None if held is None else held.state


def wait_exited(pidfd: int, timeout: float) -> bool:
    """Whether the process behind ``pidfd`` (not our child) exits within ``timeout``.

    Looked at once even when ``timeout`` is 0; waited in slices, so that any
    timeout works (poll refuses one past ~24 days: a daemon's stop budget of
    1e300 s, ``start_timeout=1e12``).
    """
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.0, deadline - time.monotonic())
        if readable(pidfd, min(left, _SLICE)):
            return True
        if left <= 0:
            return False


def wait_gone(pid: int, timeout: float, pidfd: Pidfd, leader: int = 0) -> Killed | None:
    """Wait up to ``timeout`` for ``pid`` (not our child) to exit, then SIGKILL it.

    A daemon that reported failure must not outlive the launcher's verdict,
    nor what it started: the SIGKILL takes the process group it leads too,
    as ``aiodaemon stop``'s does (a subprocess of a startup hook that blocked
    the loop lived on, re-parented to init, holding the ``listen=`` sockets).
    ``pidfd``: as :attr:`LaunchResult.pidfd`; ``leader``: the session leader
    still waiting on the daemon, the launcher's child (0: none).

    Returns:
        What was killed when it was sent SIGKILL, else None.

    Raises:
        StartupError: no pidfd (see :func:`open_pidfd`) and ``pid`` still
            runs at ``timeout``: it is not signalled by number.
    """
    if isinstance(pidfd, StartupError):
        from ._procfs import exists, is_zombie  # only where the kernel has no pidfd

        # Without a pidfd the waiting can still be done, by number: a pid
        # recycled meanwhile only makes it wait longer, never signalled. An
        # exited daemon is gone, though not reaped yet: orphaned, it waits for
        # init, which may take a second or more (a container's or a VM's).
        deadline = time.monotonic() + timeout
        while exists(pid) and not is_zombie(pid):
            if time.monotonic() > deadline:
                raise pidfd
            time.sleep(0.01)
        return None
    if pidfd is None or wait_exited(pidfd, timeout):
        return None
    from ._kill import kill_daemon  # only for a daemon that has to be killed

    try:
        return kill_daemon(pidfd, pid, _KILL_WAIT, leader)
    except ProcessLookupError:
        return None  # it exited just now
