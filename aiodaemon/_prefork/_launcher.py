"""The launching process of a detached start: it waits for the daemon's verdict and exits with it.

``_detach.fork_daemon`` forks; its first child starts a session and forks the
daemon, and the process that called it becomes the launcher. It reads the
daemon's verdict on the readiness pipe (``_readiness``), stops a daemon that
failed or timed out, says what happened, and exits with the daemon's status,
never returning to its caller, whose cleanups (a pidfile's removal, a socket's
unlink) belong to the daemon. A signal that cuts its wait short (Ctrl-C, a
kill, a closed terminal, Ctrl-\\) ends it with words saying so, never by its
default action: the daemon goes on starting.

Synchronous and asyncio-free, no ``contextlib`` (``aiodaemon.pep3143`` imports
it into synchronous programs).
"""

from __future__ import annotations

import os
import signal
import sys

from ..exceptions import StartupError
from ._interrupts import interrupt_on_signals, interrupting_signal, restore_signals
from ._messages import flush_stdio, say, seconds_shown, silence
from ._readiness import (
    UNREADY_EXIT_GRACE,
    LaunchResult,
    WaitInterrupted,
    announced_pid,
    stop_unready,
    wait_gone,
    wait_ready,
)

# Annotations only: aiodaemon.pep3143 imports this module into synchronous programs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._kill import Killed

__all__ = ["WAIT_SIGNALS", "exit_with_verdict"]


def exit_with_verdict(
    child: int,
    read_fd: int,
    write_fd: int,
    on_ready: Callable[[int], None],
    on_failure: Callable[[LaunchResult], None],
    timeouts: tuple[float | None, float | None, float],
    pidfile: str | None,
    mask: Iterable[int],
    *,
    on_stall: Callable[[], None] | None = None,
) -> None:
    """Wait for the daemon's verdict, act on it, say it, and exit with the daemon's status.

    :data:`WAIT_SIGNALS` are held, except while it waits: one that came
    before its handlers, or with the verdict, is raised in the wait or just
    after the verdict was read, never in between, so what it says holds.

    Returns only when the first child forked no daemon, being PID 1 of a new
    pid namespace: reaped, the signal handlers as before the fork, the
    signals still held, for ``_detach.fork_daemon`` to raise in the caller.

    Args:
        child: the first child, the session leader to reap.
        read_fd: the readiness pipe's read end.
        write_fd: its write end, the daemon's, closed here.
        on_ready: run with the daemon's pid once it is ready.
        on_failure: run with the result when the daemon failed or died first.
        timeouts: the start timeout, its ``time.monotonic()`` deadline (both
            None without one) and the daemon's shutdown timeout.
        pidfile: the daemon's, named in how to stop it after an interrupt.
        mask: the signal mask to wait with and to keep after the verdict.
        on_stall: run once when the daemon's announced wait gives no verdict
            within a second (see :func:`wait_ready`).
    """
    start_timeout, deadline, shutdown_timeout = timeouts
    code = 1
    result: LaunchResult | None = None
    unforked = False
    try:
        os.close(write_fd)
        interrupt_on_signals()
        result = wait_ready(read_fd, start_timeout, deadline, mask=mask, on_stall=on_stall)
        if result.namespace_init:
            # Nothing runs: the first child exits at once. Our handlers go
            # before fork_daemon unblocks the signals, so one held meanwhile
            # acts as it would have without a start.
            _reap(child)
            restore_signals()
            unforked = True
            return
        # The verdict is in: a signal from now on interrupts only what follows.
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if result.ready and result.pid is not None:
            # The daemon released the session leader before its R: the start
            # returns with the daemon alone, its parent init (or a subreaper).
            _reap(child)
            on_ready(result.pid)
            code = 0
        else:
            try:
                if result.timed_out and result.pid is not None:
                    killed, held = stop_unready(result.pid, shutdown_timeout, result.pidfd, child)
                    if held is not None:
                        # Not its loop nor its hooks: it ran no code (sent SIGCONT, unless frozen).
                        result.message += f" (pid {result.pid} was {held})"
                    if killed is not None:
                        # Not the graceful stop the verdict implies: its shutdown
                        # hooks did not run, and its log ends without an exit.
                        waited = seconds_shown(shutdown_timeout + UNREADY_EXIT_GRACE)
                        why = "" if held is not None else " (its event loop blocked?)"
                        result.message += (
                            f", and still running {waited} s"
                            f" after SIGTERM{why}: killed it{_group(killed)}"
                        )
                elif result.pid is not None:
                    wait_gone(result.pid, 2.0, result.pidfd, child)
                # The daemon is gone: so is the leader that waited on it.
                _reap(child)
            except StartupError as exc:
                # The daemon's own failure is what the start says; this adds to it.
                # (Not reaped: a leader still waiting on the daemon goes with us.)
                say(f"warning: {exc}; it may still run")
            on_failure(result)
            code = result.code
    except KeyboardInterrupt as exc:
        code = 128 + interrupting_signal()
        pid = exc.pid if isinstance(exc, WaitInterrupted) else None
        never = False
        if result is None and pid is None:
            # Cut short before the pipe was read: the first child names it at
            # once (a Ctrl-C on a stuck one still ends the wait). Waited for
            # before the last words' bound, which counts only their writing:
            # armed first, it ran out in this wait and the line went to /dev/null.
            pid, never = announced_pid(read_fd, _ANNOUNCE_WAIT)
        _bound_last_words()
        if result is not None and result.ready:
            # Printing the pid, say: the daemon runs, and it is not "starting".
            say(_interrupted(result.pid, pidfile, ready=True))
        elif result is not None:
            # The start had failed: the daemon is stopping (a timed-out one was
            # sent SIGTERM), it does not go on starting.
            say(_interrupted(result.pid, pidfile, result.message))
        else:
            # The daemon is detached and goes on starting; only the wait was cut short.
            if never:
                # The first child ended before it forked the daemon (killed):
                # nothing goes on starting, and nothing is left of the start.
                # Reaped first: the pipe's end of file can come while its exit
                # still holds the pidfile's lock (the two descriptors close one
                # after the other), and the removal, which never waits for that
                # lock, left the file behind (the full suite met it 1 in 8). The
                # end of file means it is exiting: it held its end until then.
                _reap(child)
                on_failure(LaunchResult(None, False, code, _interrupted(None, None, never=True)))
            elif pid is None:
                # Not forked yet (the first child held up): it may still be, or not.
                say(_interrupted(None, pidfile, unknown=child))
            else:
                say(_interrupted(pid, pidfile))
    finally:
        if not unforked:
            try:
                flush_stdio()
            except KeyboardInterrupt:
                # Another Ctrl-C while an output nobody reads held the flush: the
                # exit asked for, not an unwinding of the stack that releases the
                # daemon's files (its control socket was unlinked).
                code = 128 + interrupting_signal()
            # The launcher owns nothing any more: atexit handlers and finalizers
            # (a listener's unlink, a pidfile's removal) belong to the daemon.
            os._exit(code)


def _group(killed: Killed) -> str:
    """What the start's SIGKILL took with the daemon, in the words ``aiodaemon stop`` uses."""
    words = f"{killed.took()} with SIGKILL"
    if killed.left():
        words += f"; {killed.left()} left running"
    if killed.stuck():
        words += f"; {killed.stuck()} still running"
    return words


def _reap(child: int) -> None:
    """Reap the session leader, which leaves once the daemon has its verdict or is gone."""
    try:  # noqa: SIM105 (no contextlib on the pep3143 path)
        os.waitpid(child, 0)
    except ChildProcessError:
        pass  # reaped already by the program's own SIGCHLD handler waiting for any child


#: Seconds an interrupted launcher still waits for the daemon's pid, to say it.
_ANNOUNCE_WAIT = 1.0


def _interrupted(
    pid: int | None,
    pidfile: str | None,
    failure: str | None = None,
    *,
    ready: bool = False,
    never: bool = False,
    unknown: int | None = None,
) -> str:
    """What Ctrl-C on a waiting launcher did: not cancel the start, and how to stop it.

    ``failure``: the failed start's verdict, when the Ctrl-C cut short the
    wait for its daemon to stop (one blocking its loop may never stop by itself).
    ``ready``: the daemon was ready when it came (it cut short what followed).
    ``never``: no daemon was forked: nothing to stop.
    ``unknown``: no pid was announced in time; the detach's first child, whose
    session the daemon will be in, if it ever forks it.
    """
    if never:
        return (
            "interrupted while waiting for the daemon to be ready; the detach ended"
            " before it forked the daemon: nothing runs"
        )
    if unknown is not None:
        message = (
            "interrupted while waiting for the daemon to be ready; the daemon may still"
            " start (its pid was not known yet)"
        )
        if pidfile is None:
            return f"{message}: `ps -s {unknown}` finds it"
        import shlex  # only on this rare path

        quoted = shlex.quote(pidfile)
        return (
            f"{message}: `aiodaemon status --pidfile {quoted}` tells whether it runs,"
            f" `aiodaemon stop --pidfile {quoted}` stops it"
        )
    daemon = "the daemon" if pid is None else f"the daemon (pid {pid})"
    if ready:
        message = f"interrupted after {daemon} was ready; it runs"
        stops = "stops it"
    elif failure is None:
        message = f"interrupted while waiting for the daemon to be ready; {daemon} goes on starting"
        stops = "stops it"
    else:
        message = f"{failure}; interrupted while {daemon} stops"
        stops = "ends it if it does not"
    if pidfile is not None:
        import shlex  # only on this rare path

        return f"{message}; `aiodaemon stop --pidfile {shlex.quote(pidfile)}` {stops}"
    return message if pid is None else f"{message}; `kill {pid}` {stops}"


# --- what cuts the wait short ----------------------------------------------------------

#: What interrupts the launcher's wait: Ctrl-C, a kill (``timeout``), a closed
#: terminal, Ctrl-\ (its default action, a core dump, said nothing of the daemon).
WAIT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

#: Seconds an interrupted launcher's last words may wait for a stuck output.
_LAST_WORDS = 1.0


def _bound_last_words() -> None:
    """Give the interrupted launcher's outputs :data:`_LAST_WORDS` s, then /dev/null them.

    Stuck printing the pid (``aiodaemon start | reader`` whose reader stopped
    reading), the launcher could not be ended but by SIGKILL: its words, and
    the line still buffered, waited for the reader. The timer's signal
    interrupts that write, which then goes to /dev/null; stderr says the pid.
    """

    def give_up(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                silence(stream)

    try:
        signal.signal(signal.SIGALRM, give_up)
    except ValueError:
        return  # forked from a thread (pep3143): only the main thread may
    # A program's on_signal(SIGALRM) is held in the launcher (see
    # aiodaemon._launch): one sent to it is dropped, not taken for the timer's.
    if signal.SIGALRM in signal.sigpending():
        signal.sigtimedwait((signal.SIGALRM,), 0)
    signal.setitimer(signal.ITIMER_REAL, _LAST_WORDS)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGALRM,))
