"""``aiodaemon upgrade`` without a control socket: SIGUSR2, then the new process seen from outside.

A daemon without a control socket cannot answer how its upgrade went, and a
signal carries no ``--timeout`` (the daemon gives its new process its own
60 s). What the command sees from outside is enough to end in time, though:
the new process is a child of the daemon that leads its own process group and
runs the daemon's command line (see ``_prefork._handoff.spawn_successor``),
started after our signal. Once it is seen, a new process that ends while the
pidfile still names the daemon is a failed upgrade, said at once (not when
the wait runs out), and one not in charge after ``--timeout`` is killed
through a pidfd: the daemon takes that for a failed start and serves on.
Synchronous and light, for the CLI.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from .._prefork._messages import say, seconds_shown, write_line
from .._prefork._pidfile_status import read_pidfile, says_reloading, says_stopping
from .._prefork._procfs import is_suspended, signal_meets, stat_field
from .._prefork._readiness import readable
from . import _control
from ._control import ControlCode
from ._taken_over import Taker, inherited

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    #: What to say when the daemon exits before it handed over:
    #: (pidfile, control socket, the daemon's pid, deadline, lock taker) -> exit code.
    AfterDeath: TypeAlias = Callable[[str, str | None, int, float, Taker | None], int]

__all__ = ["stopping_line", "upgrade_by_signal"]

#: Seconds added to ``--timeout`` for the hand-over after the new process is ready.
HANDOVER_GRACE = 15.0
#: Seconds the daemon has to reap a new process we killed and write its pid back.
_ROLLBACK_WAIT = 5.0
#: Seconds a new process not ready in time has to end after its SIGTERM before
#: the SIGKILL: it may serve already, and answers what it accepted as it stops.
_STOP_WAIT = 10.0
#: Seconds between two looks at a reloading daemon's mark.
_RELOAD_POLL = 0.05
#: Seconds a daemon that ended a reload seen after our SIGUSR2 has to start its
#: new process, if it took the signal after the reload, before it is known to
#: have refused the upgrade.
_REFUSAL_GRACE = 2.0
#: Seconds between two looks at the pidfile and the daemon's children.
_POLL = 0.02
_LOG_SAYS = "without a control socket its log says why"


class NewProcess:
    """The new process an upgrade of ``parent`` starts, once seen among its children."""

    def __init__(self, parent: int) -> None:
        self.parent = parent
        self._command = _cmdline(parent)
        #: its children before the signal: none of them is the new process.
        self._before = _children(parent)
        self.pid: int | None = None
        self._pidfd: int | None = None

    def none_started(self) -> bool:
        """Whether the daemon has started no process at all since the signal (as far as seen).

        False when its children cannot be read, or a new one is not recognised
        by its command line (a program that sets its process title): it may be
        the new process.
        """
        return self._command is not None and not (_children(self.parent) - self._before)

    def look(self) -> None:
        """Find the new process among the daemon's children (once)."""
        if self.pid is not None or self._command is None:
            return
        for child in sorted(_children(self.parent) - self._before):
            if stat_field(child, 2) != child or _cmdline(child) != self._command:
                continue  # not its own group leader, or another program
            try:
                pidfd = os.pidfd_open(child)
            except OSError:
                continue
            # Checked once the pidfd pins it: the pid may have been recycled.
            if stat_field(child, 1) != self.parent:
                os.close(pidfd)
                continue
            self.pid, self._pidfd = child, pidfd
            return

    def ended(self, within: float = 0.0) -> bool:
        """Whether the new process (seen) has ended, waiting up to ``within`` seconds."""
        if self._pidfd is None:
            return False
        return readable(self._pidfd, within)

    def send(self, signum: int) -> None:
        """Signal the new process (seen); the daemon rolls back as for any failed start."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def upgrade_by_signal(
    path: str,
    pid: int,
    pidfd: int,
    timeout: float,
    taker: Taker | None,
    after_death: AfterDeath,
) -> int:
    """SIGUSR2, then wait for another process to hold the pidfile, or for the upgrade to fail.

    Refused, nothing sent, when the daemon has no handler for SIGUSR2.

    Args:
        path: the pidfile.
        pid: its verified holder, the daemon.
        pidfd: a pidfd on ``pid``.
        timeout: seconds the new process has to be ready.
        taker: :func:`._taken_over.lock_taker` of ``path``, read before ``pid``
            was verified: the new process inherits that lock, a daemon
            started afresh since takes one of its own.
        after_death: what to say when the daemon itself exits meanwhile
            (``path``, no control socket, ``pid``, the deadline, ``taker``).
    """
    left = _wait_reloaded(pid, pidfd, timeout)
    if left is None:
        return ControlCode.FAILURE
    if says_stopping(pid):
        # Its loop abandons upgrades now, or is gone with its SIGUSR2 handler.
        say(stopping_line(pid))
        return ControlCode.FAILURE
    meets = signal_meets(pid, signal.SIGUSR2)
    if meets == "default":
        # Its default action: the daemon would be gone, not upgraded.
        say(
            f"upgrade refused: pid {pid} has no handler for SIGUSR2, which would end it "
            "(a daemon of aiodaemon 0.1.0 has none: it predates upgrades); "
            "nothing sent: use 'aiodaemon restart'"
        )
        return ControlCode.FAILURE
    if meets == "ignored":
        # Nothing would answer: the wait would last the whole timeout for nothing.
        say(f"upgrade refused: pid {pid} ignores SIGUSR2; nothing sent: use 'aiodaemon restart'")
        return ControlCode.FAILURE
    new = NewProcess(pid)
    try:
        if not _control._send(pidfd, pid, signal.SIGUSR2):
            return ControlCode.NO_PERMISSION
        return _wait(path, pid, pidfd, left, taker, new, after_death)
    finally:
        new.close()


def _wait_reloaded(pid: int, pidfd: int, timeout: float) -> float | None:
    """Wait, up to ``timeout``, for the daemon to end the reload it runs; the seconds left.

    None, said, when it still reloads at the end.

    It refuses an upgrade while it reloads (only its log said so): SIGUSR2 then
    was waited on for the whole --timeout and 15 s more. As over the control
    socket, the command asks once the reload is over, and says so meanwhile.
    """
    if not says_reloading(pid):
        return timeout
    say(f"{_refused(pid)}; trying again for up to {seconds_shown(timeout)} s")
    deadline = time.monotonic() + timeout
    while says_reloading(pid):
        if time.monotonic() >= deadline:
            say(f"upgrade failed: {_refused(pid)}; nothing started")
            return None
        if readable(pidfd, _RELOAD_POLL):
            break  # exited: the looks that follow say so
    # What is left of it, as over the control socket; a moment at least.
    return max(deadline - time.monotonic(), _RELOAD_POLL)


def _refused(pid: int) -> str:
    """The daemon's own words when it refuses an upgrade as it reloads."""
    return f"cannot upgrade while reloading (pid {pid})"


def stopping_line(pid: int) -> str:
    """What ``upgrade`` says of a daemon that is stopping, whichever way it was asked."""
    return f"upgrade failed: pid {pid} is stopping; nothing started"


def _wait(
    path: str,
    pid: int,
    pidfd: int,
    timeout: float,
    taker: Taker | None,
    new: NewProcess,
    after_death: AfterDeath,
) -> int:
    started = time.monotonic()
    deadline = started + timeout + HANDOVER_GRACE
    stopped: str | None = None  # how the new process was stopped, once it was
    # A reload begun between our look and the signal: the daemon refused the
    # upgrade (it logs why); once the reload is over, a daemon that took the
    # signal after it starts its new process at once.
    reloaded: float | None = None  # when the reload seen since the signal ended
    seen_reloading = False
    while True:
        new.look()
        # Looked at before the pidfile: a new process that took over, then
        # ended, is still found in charge (or the daemon's end says so).
        ended = new.ended()
        holder = read_pidfile(path).running_pid
        if holder is not None and holder != pid:
            if inherited(path, taker):
                write_line(str(holder))
                return ControlCode.OK
            if readable(pidfd, 0):
                # A lock of its own: the daemon exited (stopped, or killed with
                # its new process) and a daemon started afresh took the pidfile.
                return after_death(path, None, pid, deadline, taker)
        if ended:
            if stopped is not None:
                why = f"was not ready after {seconds_shown(timeout)} s: {stopped}"
            else:
                why = "ended before it took over"
            what = f"the new process (pid {new.pid}) {why}"
            say(f"upgrade failed: {what}; pid {pid} serves on ({_LOG_SAYS})")
            return ControlCode.FAILURE
        now = time.monotonic()
        if new.pid is None:
            if says_reloading(pid):
                seen_reloading, reloaded = True, None
            elif seen_reloading and reloaded is None:
                reloaded = now
            if reloaded is not None and now - reloaded >= _REFUSAL_GRACE and new.none_started():
                say(f"upgrade failed: {_refused(pid)}; nothing started ({_LOG_SAYS})")
                return ControlCode.FAILURE
        if new.pid is not None and stopped is None and now - started >= timeout:
            # As the daemon itself stops one: it may serve already (a startup
            # hook started its server, a later one hangs), and a SIGKILL would
            # reset the requests it accepted.
            new.send(signal.SIGTERM)
            if new.pid is not None and is_suspended(new.pid) is not False:
                # Suspended (SIGSTOP), it kept the SIGTERM pending until its
                # SIGKILL: continued, as `stop` continues a daemon, it stops.
                new.send(signal.SIGCONT)
            stopped = "sent it SIGTERM"
            if not new.ended(_STOP_WAIT):
                new.send(signal.SIGKILL)
                stopped = f"killed it (still running {seconds_shown(_STOP_WAIT)} s after SIGTERM)"
            if new.ended(_ROLLBACK_WAIT):
                continue  # the daemon rolls back: its pid stays in the pidfile
        left = deadline - now
        if left <= 0:
            if new.none_started() and seen_reloading:
                say(f"upgrade failed: {_refused(pid)}; nothing started ({_LOG_SAYS})")
                return ControlCode.FAILURE
            if new.none_started():
                # Waited out in full all the same: a daemon whose loop was held
                # may start its new process late, and it would take over unseen.
                within = seconds_shown(timeout + HANDOVER_GRACE)
                say(
                    f"no new process from pid {pid} within {within} s (a daemon still"
                    f" starting refuses an upgrade); it keeps running ({_LOG_SAYS})"
                )
                return ControlCode.FAILURE
            within = seconds_shown(timeout)
            say(f"no hand-over from pid {pid} within {within} s; it keeps running ({_LOG_SAYS})")
            return ControlCode.FAILURE
        # Wakes at once if the old daemon exits; else polls.
        if readable(pidfd, min(left, _POLL)):
            holder = read_pidfile(path).running_pid
            if holder is None or holder == pid:
                # Killed, say: its successor may take over on its own.
                return after_death(path, None, pid, deadline, taker)


def _children(pid: int) -> set[int]:
    """The children of every thread of ``pid``; empty once it is gone."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with (
                contextlib.suppress(OSError, ValueError),
                open(f"/proc/{pid}/task/{task}/children", "rb") as f,
            ):
                found.update(int(child) for child in f.read().split())
    return found


def _cmdline(pid: int) -> bytes | None:
    """The command line of ``pid``, None once it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() or None
    except OSError:
        return None
