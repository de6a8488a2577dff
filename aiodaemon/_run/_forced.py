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
kill the children the usual exit would have ended (:mod:`._shutdown`'s step),
one line on stderr if stderr can take it at once — then ``os._exit``.
Records still queued for the log are lost: the person who asked twice asked
for that.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

import orjson
import structlog

from .._logs._logwriter import start_bounded
from ._state import Action, Event

if TYPE_CHECKING:
    import asyncio

    from .._logs._logwriter import LogWriter
    from .._prefork._pidfile import Pidfile
    from .._prefork._readiness import ReadinessPipe
    from ._state import Lifecycle

__all__ = [
    "MAX_EXIT_WATCHERS",
    "WATCH_SLOTS",
    "BackstopClock",
    "ForcedExit",
    "expect_stop_claim",
    "log_joined",
    "log_repeated",
    "say_forced_exit",
    "start_backstop",
    "tell_exit",
    "watch_exit",
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
            clock = BackstopClock(max(0.0, arrival + budget - time.monotonic()))
            if not self._began.wait(clock.due - clock.started):
                overdue(clock.stopped())
        finally:
            self._watching.release()

    def join_watch(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) for a watching thread to end: none outlives the run."""
        if self._watching.acquire(timeout=timeout):
            self._watching.release()

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

    def _exit(
        self, code: int, reason: str, *, log: bool = False, interrupted: object = None
    ) -> NoReturn:
        # Each step on its own: one failing (a vanished directory) must not
        # keep the others, or the exit itself, from happening.
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


def say_forced_exit(status: int, why: str) -> None:
    """Say a forced exit on stderr (if it takes it at once) and to a watching ``stop``.

    Each attempted once, whatever the other did: the process ends next.
    """
    with contextlib.suppress(BaseException):
        say_nowait(f"aiodaemon: forced exit ({why}), status {status}\n")
    with contextlib.suppress(BaseException):
        tell_exit(status, f"forced exit ({why})")


def say_nowait(text: str) -> None:
    """Write ``text`` (its first ``PIPE_BUF`` bytes) to fd 2 only if that cannot block."""
    write_nowait(text.encode("utf-8", "backslashreplace")[: select.PIPE_BUF])


def write_nowait(data: bytes) -> int:
    """Write ``data`` to fd 2 as far as that cannot block; how many bytes it did not take.

    Our fd 2 is shared (a supervisor's pipe): it stays blocking, and each
    write is one that ``poll`` allows, at most ``PIPE_BUF`` bytes (which a
    pipe takes whole and at once when it has room). A stalled pipe, a closed
    fd 2 or a reader gone take nothing: there is nobody to tell. A terminal
    may take part of such a write and hold the rest until it is read (a
    stalled ssh connection): it is written through a non-blocking
    descriptor of its own, where it can be opened.
    """
    terminal = _terminal_nowait()
    if terminal is not None:
        try:
            return len(data) - os.write(terminal, data)
        except OSError:  # EAGAIN: it takes nothing now; EIO: it hung up
            return len(data)
        finally:
            os.close(terminal)
    poller = select.poll()
    poller.register(2, select.POLLOUT)
    view = memoryview(data)
    try:
        while view and any(events & select.POLLOUT for _, events in poller.poll(0)):
            view = view[os.write(2, view[: select.PIPE_BUF]) :]
    except OSError:
        pass
    return len(view)


def _terminal_nowait() -> int | None:
    """fd 2's terminal opened anew, write-only and non-blocking; None if fd 2 is none.

    Also None when it cannot be opened (a chroot hides it, a dropped user may
    not open it): fd 2 is then written as a pipe would be.
    """
    try:
        if not os.isatty(2):
            return None
        return os.open(os.ttyname(2), os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None


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


# --- telling a watching `aiodaemon stop` how the process ended ---------------------
# Here, beside the forced exit that is one of its users, rather than in a module
# of its own: every daemon loads this one, and a module more costs every start.
#
# The command is not the daemon's parent: it sees the process go, never its
# status, and said "stopped" of a shutdown forced past ``shutdown_timeout`` as
# of a graceful one. A stop request that asks to watch leaves a copy of its
# connection here; each way the process ends writes one line to every copy, the
# protocol's ``{"v": 1, "ok": true, "exit": status, "reason": why}``: the
# graceful end once its status is known, and a forced one just before its
# ``os._exit``, so the last line the command reads is the status the process
# ended with. The kernel closes the copies at the exit, which ends the
# command's read. Plain ``os.write`` on sockets asyncio made non-blocking: safe
# inside the forced exit's signal handler, and never waiting on a reader.
# A `stop` that had to send SIGTERM (no control socket) holds a claim on it, an
# abstract unix socket it listens on while it waits (aiodaemon._cli._stop_claim):
# the same line goes there, on a connection it reads once the process is gone.
# A `stop` that finds the daemon stopping already and has no watched connection
# (its loop held up by sync code, its control socket closed at the very end,
# another `stop` holding the claim) listens on one of :data:`WATCH_SLOTS` names
# derived from the claim's, and hears the same line there.

#: Copies of stop connections kept at most: each is a descriptor of the daemon's.
MAX_EXIT_WATCHERS = 8
#: Names beside the claim's that waiting ``stop`` commands listen on (see
#: ``_stop_claim.watch_stop``, which a test holds to the same names).
WATCH_SLOTS = 8

_exit_watchers: list[int] = []

#: The abstract name a signalling ``stop`` claims our SIGTERM under, then its watch
#: slots' names, each told the exit, once the shutdown began (see
#: :func:`expect_stop_claim`); () before, or unknown.
_exit_names: tuple[str, ...] = ()


def watch_exit(fd: int) -> bool:
    """Keep a copy of the connection ``fd`` to tell it the exit; False when enough are kept."""
    from .._prefork._detach import close_in_forked_children

    if len(_exit_watchers) >= MAX_EXIT_WATCHERS:
        return False
    copy = os.dup(fd)  # not inherited by an exec'd child (close-on-exec)
    # Nor by a forked one, which would hold the command's read open past our exit.
    close_in_forked_children(copy)
    _exit_watchers.append(copy)
    return True


def expect_stop_claim() -> None:
    """Note the names ``stop`` commands hear the exit under: the SIGTERM's claim, the watches.

    On the loop as the shutdown begins: the forced exits that may follow run
    in a signal handler, where ``/proc`` is not read. Named here as
    ``_procfs.signal_claim`` names it (a test holds the two together): that
    module is the commands', and a running daemon imports nothing more (an
    upgrade may have replaced aiodaemon's files on disk by now).
    """
    global _exit_names
    pid = os.getpid()
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
        # After the command name (which may hold ")"): the start time is field 19.
        started = int(stat.rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return  # out of descriptors, /proc hidden: the stop says only "stopped"
    claim = f"\0aiodaemon-stop-{pid}-{started}"
    _exit_names = (claim, *(f"{claim}-watch{k}" for k in range(WATCH_SLOTS)))


def tell_exit(status: int, reason: str | None) -> None:
    """Write the exit's ``status`` and ``reason`` to every stop that waits to hear it."""
    if not _exit_watchers and not _exit_names:
        return
    # orjson, loaded by every daemon: no import here (a signal handler's), and
    # the control protocol's line (version 1) whether or not it serves one.
    message = {"v": 1, "ok": True, "exit": int(status), "reason": reason}
    try:
        line = orjson.dumps(message) + b"\n"
    except TypeError:  # a reason with a surrogate (a file name that is not UTF-8)
        message["reason"] = (reason or "").encode("utf-8", "backslashreplace").decode()
        line = orjson.dumps(message) + b"\n"
    for fd in _exit_watchers:
        # A command that left (or stopped reading) has nobody to tell.
        with contextlib.suppress(OSError):
            os.write(fd, line)
    for name in _exit_names:
        # Nobody listening there is refused at once: a few system calls each.
        with contextlib.suppress(OSError):
            _tell_claim(name, line)


def _tell_claim(name: str, line: bytes) -> None:
    """Leave ``line`` on a connection to the claim ``name``, if root or our uid holds it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        # A unix connect is queued at once, or refused: it never waits.
        sock.setblocking(False)
        sock.connect(name)
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        uid = int.from_bytes(creds[4:8], sys.byteorder, signed=True)
        # Anyone may bind the name: the status goes only to a command of root's or ours.
        if uid in (0, os.geteuid()):
            sock.send(line)
    finally:
        sock.close()
