"""The forced exit: what a second SIGTERM/SIGINT during shutdown may still do, and backstops.

Its handler, installed when the shutdown begins, is a plain ``signal.signal``
handler, not a loop callback, so it runs even while sync code blocks the loop.
It asks the state machine what each stop signal means (a pure, lock-free
call): the second stop signal the daemon receives forces the exit; the first,
when the shutdown was begun otherwise (``main`` returned, ``aiodaemon stop``,
an upgrade's hand-over), joins it and is handed to the loop to be logged
(``call_soon_threadsafe``: a deque append and a one-byte write). Since it
interrupts the main thread between any two bytecodes, possibly inside a
lock, it only records and leaves (gunicorn's ``Arbiter.signal`` and trio's
``_signals.py`` are the models): no logging, no locks, no thread joins.
Forcing the exit, it makes one non-blocking attempt at the minimum a person
or a supervisor relies on — release the launcher with the status, remove the
socket files we own (the steps :mod:`._builtin` registers) and the pidfile,
kill the children the usual exit would have ended (:mod:`._process_end`'s
step), one line on stderr if stderr can take it at once and the status to a
waiting ``aiodaemon stop`` (:mod:`._exit_notice`) — then ``os._exit``.
Records still queued for the log are lost: the person who asked twice asked
for that.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

import structlog

from .._logs._logwriter import start_bounded
from ._exit_notice import say_forced_exit
from ._kept_signals import let_go_of_signals
from ._state import Action, Event

if TYPE_CHECKING:
    import asyncio

    from .._logs._logwriter import LogWriter
    from .._prefork._pidfile import Pidfile
    from .._prefork._readiness import ReadinessPipe
    from ._state import Lifecycle

__all__ = [
    "BackstopClock",
    "ForcedExit",
    "log_joined",
    "log_repeated",
    "start_backstop",
]

_log = structlog.get_logger("aiodaemon")

#: The signals that force the exit once shutdown has begun.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: A backstop thread waking this many seconds after its time did not run meanwhile;
#: a loop blocked in Python code leaves the other threads running.
FROZEN_AFTER = 1.0

#: Seconds within which a second stop signal the blocked loop has not read yet is
#: the first one delivered twice (GNU ``timeout`` signals its child, then the
#: child's process group, microseconds apart), not a second request.
REPEAT_WINDOW = 1.0
#: Seconds after the arrival of the stop signal that began (or joined) the
#: shutdown within which the same signal again is that one delivered twice, not
#: a second request: GNU ``timeout`` signals its child, then the child's process
#: group, and may be preempted in between by the daemon it woke. Far below a
#: second press of Ctrl-C, which takes a tenth of a second at the very least.
DUPLICATE_WINDOW = 0.05
#: Seconds a forced exit waits for the log to take its last records (and those
#: queued before them): a stalled sink must not hold up an exit meant to be at once.
LAST_WORDS_WAIT = 0.5
#: Seconds a forced exit waits for the members of its process group it killed to
#: be gone, so that their ports are free when the launcher hears the verdict
#: (SIGKILL ends at once all but a process stuck in the kernel).
GROUP_WAIT = 0.5
#: Where the log's code is (see _inside_the_log).
_LOGS_PACKAGE = os.path.dirname(start_bounded.__code__.co_filename) + os.sep


class ForcedExit:
    """The minimum done at a forced exit, and the handler that does it."""

    def __init__(self, pipe: ReadinessPipe, pidfile: Pidfile | None) -> None:
        self.pipe = pipe
        self.pidfile = pidfile
        #: extra non-blocking steps registered by services (see RuntimeHandle).
        self.steps: list[Callable[[], None]] = []
        #: the log writer, told the forced exit last (see :meth:`_last_words`).
        self.logs: LogWriter | None = None
        # Taken by the first forced exit: a later signal must not replace its
        # status (it may interrupt the handler itself, between any two bytecodes);
        # only ever acquired without blocking, so safe inside a handler.
        self._claim = threading.Lock()
        self._lifecycle: Lifecycle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: ``time.monotonic()`` when a stop signal came before the shutdown began.
        self._first_arrival: float | None = None
        #: the loop's Python-level handlers :meth:`arm_early` took the place of.
        self._loop_handlers: dict[int, object] = {}
        #: the stop signals :meth:`_arrived` saw that the loop has not read yet,
        #: with their arrival times (appended in a handler, which may run while
        #: the loop searches the list: harmless, a list grows under its iterator).
        self._unread: list[tuple[int, float]] = []
        #: which stop signal the lifecycle last counted, and when it arrived
        #: (see DUPLICATE_WINDOW).
        self._counted: tuple[int, float] | None = None
        #: :meth:`arm` has put :meth:`_handle` in place of :meth:`_arrived`.
        self._armed = False
        #: set once the shutdown has begun (:meth:`arm`): the stop was read.
        self._began = threading.Event()
        #: what :meth:`watch_unread_stop` asked for: (budget, overdue), once ``main`` runs.
        self._unread_watch: tuple[float, Callable[[str | None], None]] | None = None
        #: held by the watching thread while it runs (see :meth:`join_watch`).
        self._watching = _thread.allocate_lock()
        #: whose handlers these are: a forked child's stop signal is not ours.
        self._pid = os.getpid()
        #: kills the rest of our process group (see :meth:`kill_group`); loaded
        #: now, never in a handler, and only by a group leader, which a
        #: detached daemon is (a foreground one in another's group pays nothing).
        self._group_killer: Callable[[int, float], int | None] | None = None
        if os.getpgid(0) == self._pid:
            from .._prefork._kill import kill_own_group

            self._group_killer = kill_own_group
        #: how many :meth:`kill_group` killed, for the log's last words.
        self._group_killed: int | None = None

    def arm_early(self) -> None:
        """Before the shutdown: count the stop signals as they arrive, beside the loop.

        The loop's own handlers stay: it reads each stop signal when it next
        turns and begins the shutdown, where :meth:`arm` puts its handler in
        their place. Sync code that blocks the loop (a startup hook in a
        blocking connect) would keep a second stop signal waiting with the
        first, and the loop would take both for one request delivered twice:
        Ctrl-C, then Ctrl-C again, did nothing until the code returned. So a
        second one at least :data:`REPEAT_WINDOW` after the first forces the
        exit here, as it does during the shutdown.
        """
        for signum in STOP_SIGNALS:
            # Only the Python-level handler: CPython's C handler still writes
            # the signal to the loop's wakeup fd, so the loop gets it as before.
            # The loop's own Python-level handler is still called: uvloop's
            # records the signal, and so gets it when its wakeup fd was full
            # (a few hundred signals unread: a flood of on_signal's, say),
            # where the byte is lost; replaced, it lost the SIGTERM for good.
            self._loop_handlers[signum] = signal.signal(signum, self._arrived)

    def _arrived(self, signum: int, frame: object) -> None:
        loop_handler = self._loop_handlers.get(signum)
        if callable(loop_handler):
            loop_handler(signum, frame)
        now = time.monotonic()
        if not self._armed:
            # Once armed, only a library that put back the handler it found
            # (uvicorn) calls this, with the signal it caught and raises again:
            # that one was read already.
            self._unread.append((signum, now))
        first = self._first_arrival
        if first is None:
            self._first_arrival = now
            self._start_watch(now)
        elif now - first >= REPEAT_WINDOW and self._claim.acquire(blocking=False):
            name = signal.Signals(signum).name
            why = f"second stop signal while the event loop was blocked: {name}"
            self._exit(128 + signum, why, interrupted=frame)

    def arm(self, loop: asyncio.AbstractEventLoop, lifecycle: Lifecycle) -> None:
        """From now on the stop signals reach this handler, even if the loop is stuck.

        The second stop signal (counted by ``lifecycle``) exits at once; a first
        one, if the shutdown was begun otherwise, joins it. The loop keeps its
        own handlers until it closes (:meth:`release_loop`): a stop signal that
        arrived just before, its byte still unread on the loop's wakeup fd,
        must still reach it (removed, the loop dropped it, and the next signal
        counted as the first); :meth:`loop_reads` tells the loop which ones
        this handler has already counted.
        """
        self._lifecycle, self._loop = lifecycle, loop
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        self._armed = True
        self._began.set()

    def loop_reads(self, signum: int, lifecycle: Lifecycle) -> bool | None:
        """What the loop is to do with the stop signal ``signum`` it read.

        Returns:
            True: take it (the lifecycle counts it); None: it is the stop
            signal that began the shutdown delivered again (see
            :data:`DUPLICATE_WINDOW`); False: :meth:`_handle` counted it.
        """
        arrival = next((entry for entry in self._unread if entry[0] == signum), None)
        if arrival is not None:
            self._unread.remove(arrival)
            arrived = arrival[1]
        elif self._armed:
            # Not seen by _arrived: after arm(), _handle counted it.
            return False
        else:
            # One of two delivered at once, which CPython's handler merged.
            arrived = time.monotonic()
        if lifecycle.stop_signals and self._armed:
            # Arrived before the shutdown a stop signal began (arm() came
            # after it): that request again, whenever the loop reads it.
            return None
        self._counted = (signum, arrived)
        return True

    def release_loop(self, loop: asyncio.AbstractEventLoop, lifecycle: Lifecycle) -> None:
        """Before the loop closes: take its stop signal handlers away, keeping ours.

        Its close would give them back their default action, and a signal
        then would end the daemon in the middle of its final log drain. Armed
        now if no shutdown armed it: a life cut short by an internal error
        drains its log too (its traceback among the records), and a first
        stop signal then joins the end as it does any shutdown's.
        """
        if self._lifecycle is None:
            self._lifecycle, self._loop = lifecycle, loop
            self._armed = True
            self._began.set()
        # Between the loop's removal (the default action) and our handler, a
        # stop signal would kill the daemon outright: held until ours is back.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        let_go_of_signals(loop)
        try:
            for signum in STOP_SIGNALS:
                with contextlib.suppress(RuntimeError, ValueError):
                    loop.remove_signal_handler(signum)
                signal.signal(signum, self._handle)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def watch_unread_stop(self, budget: float, overdue: Callable[[str | None], None]) -> None:
        """Bound the wait for the loop to read a first stop signal: ``overdue`` after ``budget`` s.

        Once ``main`` runs, sync code that blocks the loop for good (a busy
        loop of ``time.sleep``) kept a lone SIGTERM or Ctrl-C from ever
        beginning the shutdown: ``aiodaemon stop`` waited, then sent SIGKILL,
        and nothing said why. From now on the first stop signal starts a
        thread that calls ``overdue`` (the forced exit, on that thread) if the
        shutdown has not begun ``budget`` seconds after the signal arrived,
        with what :meth:`BackstopClock.stopped` says of its own wake. No thread
        before that: no start and no quiet life pays for one.
        """
        self._unread_watch = (budget, overdue)

    def _start_watch(self, arrival: float) -> None:
        # In the signal handler: _thread, not threading, whose Thread.start()
        # takes locks the interrupted code may hold; only in the process that
        # asked (a forked child's signal is its own), and one thread at most.
        watch = self._unread_watch
        if watch is None or self._began.is_set() or os.getpid() != self._pid:
            return
        if not self._watching.acquire(blocking=False):
            return
        # Born with every signal blocked: glibc blocks them in this thread while
        # it creates another, and a stop signal sent meanwhile (GNU timeout's
        # second, a moment after the first) went to the new thread before its
        # own mask was set: the main thread, back in the sync code that blocks
        # the loop, ran its handler only when that code returned, and took it
        # for a second request (forced exit 143) seconds after it came.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            _thread.start_new_thread(self._watch, (arrival, *watch))
        except RuntimeError:  # "can't start new thread": as unguarded as before
            self._watching.release()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _watch(self, arrival: float, budget: float, overdue: Callable[[str | None], None]) -> None:
        try:
            if self.pidfile is not None:
                # Stopping from the signal on, whether the loop reads it or the
                # forced exit ends the process: `status`, unanswered by a blocked
                # loop, read "running" from the pidfile until then.
                with contextlib.suppress(Exception):
                    self.pidfile.mark_stopping()
            clock = BackstopClock(max(0.0, arrival + budget - time.monotonic()))
            if not self._began.wait(clock.due - clock.started):
                overdue(clock.stopped())
        finally:
            self._watching.release()

    def join_watch(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) for a watching thread to end: none outlives the run."""
        if self._watching.acquire(timeout=timeout):
            self._watching.release()

    def take_back(self, signum: int) -> None:
        """The loop put its handler for ``signum`` back (see ``_kept_signals``): ours goes over it.

        As :meth:`arm_early` and :meth:`arm` installed it: the stop signals the
        loop reads are still counted here, and a second one still forces the exit.
        """
        if signum not in STOP_SIGNALS:
            return
        if self._armed:
            signal.signal(signum, self._handle)
        elif signum in self._loop_handlers:
            self._loop_handlers[signum] = signal.signal(signum, self._arrived)

    def keep(self) -> None:
        """Put the handler back where a library replaced it since :meth:`arm`.

        A server that installs its own SIGTERM/SIGINT handlers for as long as it
        runs restores, when it stops, the ones it found when it started
        (uvicorn's ``capture_signals``): called after the servers stopped and
        after the shutdown hooks, so a second stop signal still forces the exit.
        """
        if self._lifecycle is None:
            return
        for signum in STOP_SIGNALS:
            found = signal.getsignal(signum)
            if found != self._handle:
                signal.signal(signum, self._handle)
                _log.warning(
                    "stop signal handler restored",
                    signal=signal.Signals(signum).name,
                    replaced_by=repr(found),
                )

    def _handle(self, signum: int, frame: object) -> None:
        if self._claim.locked():
            # A forced exit is already on its way out (this signal interrupted
            # it, or another thread's): returning lets it finish with its status.
            return
        lifecycle, loop = self._lifecycle, self._loop
        assert lifecycle is not None
        assert loop is not None
        now = time.monotonic()
        counted = self._counted
        if counted is not None and counted[0] == signum and now - counted[1] < DUPLICATE_WINDOW:
            with contextlib.suppress(Exception):
                # Closed once the shutdown is over: nothing to log it any more.
                loop.call_soon_threadsafe(log_repeated, signum)
            return
        if lifecycle.handle(Event.TERMINATE) is not Action.FORCE_EXIT:
            self._counted = (signum, now)
            with contextlib.suppress(Exception):
                loop.call_soon_threadsafe(log_joined, signum)
            return
        if not self._claim.acquire(blocking=False):
            return
        name = signal.Signals(signum).name
        self._exit(128 + signum, f"second stop signal during shutdown: {name}", interrupted=frame)

    def exit(self, code: int, reason: str, *, log: bool = False) -> NoReturn:
        """Release the launcher, remove the pidfile, say why, and ``os._exit(code)``.

        Safe inside a signal handler: system calls only, each attempted once.
        If another forced exit is already under way, wait for it to end the process.

        Args:
            log: write the ``forced exit`` and ``exit`` records first (a caller
                that has not: on the loop, never in a signal handler).
        """
        if not self._claim.acquire(blocking=False):
            threading.Event().wait()
        self._exit(code, reason, log=log)

    def kill_group(self) -> int | None:
        """SIGKILL the rest of the process group the daemon leads, if it is its own; once.

        As the launcher's start timeout and ``aiodaemon stop`` do when they
        SIGKILL the daemon (:mod:`aiodaemon._prefork._kill`): a subprocess a
        startup hook or ``main`` started would otherwise outlive the forced
        exit, holding the ``listen=`` sockets it inherited. Safe inside a
        signal handler (system calls only).

        Returns:
            How many were killed; None when the group is not the daemon's own
            (or this ran already).
        """
        killer, self._group_killer = self._group_killer, None
        if killer is None:
            return None
        # Before ready, the session leader waiting on us is our first fork's
        # (it runs our code only): the session is ours then too.
        leader = os.getsid(0) if getattr(self.pipe, "leader", None) is not None else 0
        self._group_killed = killer(leader, GROUP_WAIT)
        return self._group_killed

    def _exit(
        self, code: int, reason: str, *, log: bool = False, interrupted: object = None
    ) -> NoReturn:
        # Each step on its own: one failing (a vanished directory) must not
        # keep the others, or the exit itself, from happening.
        with contextlib.suppress(BaseException):
            # First: the launcher, told the verdict, may start the daemon again
            # at once, on the ports these processes hold.
            self.kill_group()
        with contextlib.suppress(BaseException):
            self.pipe.fail(code, f"forced exit ({reason})")
        for step in self.steps:
            with contextlib.suppress(BaseException):
                step()
        if self.pidfile is not None:
            with contextlib.suppress(BaseException):
                self.pidfile.remove()
        say_forced_exit(code, reason)
        if log or (interrupted is not None and not _inside_the_log(interrupted)):
            with contextlib.suppress(BaseException):
                self._last_words(code, reason)
        os._exit(code)

    def _last_words(self, code: int, reason: str) -> None:
        """Log the forced exit and give the log :data:`LAST_WORDS_WAIT` to take it.

        A detached daemon's stderr is /dev/null: without them the log ended
        at whatever it said before, and nothing told the operator why it went.
        """
        logs = self.logs
        if logs is None:
            return
        logs.seal()  # other threads' records would follow ours
        if self._group_killed:
            _log.error("process group killed at exit", processes=self._group_killed)
        _log.critical("forced exit", reason=reason, status=code)
        _log.info("exit", status=code, reason=reason)
        logs.close(LAST_WORDS_WAIT)


def _inside_the_log(frame: object) -> bool:
    """Whether the code a signal handler interrupted (its ``frame``) runs the log's.

    The handler runs between two bytecodes of the main thread: there, the log
    writer may hold the lock of its wake-up (a ``threading.Event``) that
    logging takes too, and logging from the handler would wait for it for
    ever. Elsewhere, the main thread holds none of the log's locks.
    """
    while frame is not None:
        code = getattr(frame, "f_code", None)
        if code is None or code.co_filename.startswith(_LOGS_PACKAGE):
            return True
        frame = getattr(frame, "f_back", None)
    return False


def log_repeated(signum: int) -> None:
    """On the loop: the stop signal that began the shutdown, delivered again."""
    _log.info("signal received", signal=signal.Signals(signum).name, repeated=True)


def log_joined(signum: int | None) -> None:
    """On the loop: a first stop signal joined a shutdown begun otherwise.

    Args:
        signum: the signal, if its "signal received" record is not written yet.
    """
    if signum is not None:
        _log.info("signal received", signal=signal.Signals(signum).name)
    _log.info("already stopping", detail="a second SIGTERM or SIGINT exits at once")


# --- backstops ------------------------------------------------------------------------
# Threads that force an exit when a deadline passes while sync code blocks the
# loop (the start's, the shutdown's, the interpreter exit's). They guard against
# a program that blocks; they are never the reason a daemon fails. When the
# system refuses a thread (RLIMIT_NPROC, a cgroup's pids.max, no memory), the
# work goes on unguarded and the log says so, instead of the shutdown aborting
# half-way with in-flight requests cut and shutdown hooks skipped.


class BackstopClock:
    """When a backstop is due, and what a late wake says: a blocked loop, or no process running.

    A backstop thread runs on time while the loop is blocked in Python code.
    It runs late only when no thread of the process could run: the process
    was stopped (SIGSTOP), frozen (a cgroup freezer such as ``docker pause``,
    a suspended machine) or a call blocked holding the GIL. Its loop was not
    simply blocked, and saying so would send the reader after the wrong cause.
    """

    __slots__ = ("cpu", "due", "started")

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.cpu = time.process_time()
        #: ``time.monotonic()`` when the backstop should act.
        self.due = self.started + seconds

    def stopped(self) -> str | None:
        """Why the backstop acts late, if the process did not run; None if it is on time."""
        now = time.monotonic()
        late = now - self.due
        if late < FROZEN_AFTER:
            return None
        # A loop blocked in one long computing C call (holding the GIL) delays
        # the backstop as well, but that process runs: its CPU time keeps pace.
        idle = (now - self.started) - (time.process_time() - self.cpu)
        if idle < late / 2:
            return None
        return (
            f"process not running for at least {late:.1f}s:"
            " stopped, frozen, or a call blocked holding the GIL"
        )


def start_backstop(thread: threading.Thread, guards: str, *, log: bool = True) -> bool:
    """Start ``thread``; if no thread can be started, say that ``guards`` goes unguarded.

    Args:
        thread: the backstop, not yet started.
        guards: what it bounds, for the warning ("the shutdown's deadline").
        log: warn in the log (False at the interpreter's exit, when the log is
            closed: the caller tells stderr).

    Returns:
        Whether the thread runs.
    """
    try:
        start_bounded(thread)  # born with every signal blocked, which it keeps
    except RuntimeError as exc:  # "can't start new thread"
        if log:
            _log.warning(
                "backstop not started", thread=thread.name, unguarded=guards, error=str(exc)
            )
        return False
    return True
