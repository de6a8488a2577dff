"""``aiodaemon upgrade``: ask the daemon holding a pidfile to replace itself, and wait.

Through the control socket the daemon answers with the successor's pid once it
has handed over, or with the successor's error after rolling back. A daemon
without a control socket of its own (none at the path, or one that is not the
daemon's: see :mod:`._control_trust`) gets SIGUSR2 and the command watches the pidfile
until it names a new lock holder, and the new process from outside (see
:mod:`._signalled_upgrade`); such a daemon cannot say why an upgrade failed
(its log does).
"""

from __future__ import annotations

import os
import time

from .._prefork._control_protocol import VERSION
from .._prefork._messages import say, seconds_shown, write_line
from .._prefork._pidfile_status import PidfileStatus, read_pidfile, says_stopping
from .._prefork._procfs import suspension
from .._prefork._readiness import readable
from . import _control
from ._control import ControlCode
from ._control_client import (
    ControlAbsent,
    ControlBusy,
    ControlDenied,
    ControlError,
    ControlNoAnswer,
    ControlRefused,
    ControlTimeout,
    ControlVersionMismatch,
    ask,
    ask_patiently,
    request_timeout,
)
from ._control_trust import ControlUntrusted, ask_holder, say_ignored
from ._signalled_upgrade import HANDOVER_GRACE, stopping_line, upgrade_by_signal
from ._taken_over import Taker, inherited, lock_taker, taken_over

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = ["upgrade"]

#: Seconds a daemon that closed the connection without an answer may take to exit.
_EXIT_WAIT = 2.0
#: How the daemon's refusal of an upgrade once it is stopping begins.
_STOPPING = "the daemon is stopping"
#: What becomes of a request the command no longer waits for (see the daemon's
#: ``NOT_BEGUN_WHEN_HUNG_UP``).
_UNREAD = "an upgrade it had not read yet is not started, one under way goes on"


def upgrade(path: str, control: str | None, timeout: float, *, owner: int | None = None) -> int:
    """Replace the daemon holding ``path`` by a fresh process; print the new pid.

    Returns:
        0 once the new process is ready and the old one has handed over;
        1 when the upgrade failed or was refused (the old daemon still runs);
        7 when no daemon runs; 4 when not allowed to ask it.
    """
    # Whose lock the daemon holds: an upgrade's new process inherits that very
    # lock, a daemon started since takes one of its own (see _taken_over). Read
    # before the holder is verified, as stop reads it: then it is the verified
    # holder's lock, or an older one, which follows nothing.
    taker = lock_taker(path)
    # Without its pidfile the successor would be as lost as its parent: refused.
    holder = _control._holder(
        path, not_running=ControlCode.NOT_RUNNING, control=control, owner=owner, action="upgraded"
    )
    if isinstance(holder, int):
        return holder
    pid, pidfd = holder
    try:
        held = suspension(pid)
        if held is not None:
            # It would start nothing before it runs again: asked now, the command
            # waited all of --timeout, and a request read once it has left is
            # dropped (nobody waits for it any more).
            stopping = "stopping and " if says_stopping(pid) else ""
            say(f"upgrade failed: pid {pid} is {stopping}{held.state}; nothing started")
            return ControlCode.FAILURE
        if control is not None:
            code = _by_control(control, path, pid, pidfd, timeout, taker)
            if code is not None:
                return code
        return _by_signal(path, pid, pidfd, timeout, taker)
    except _MovedOn as moved:
        how = moved.how
    finally:
        os.close(pidfd)
    # Another upgrade handed over between our look at the pidfile and our
    # request, or the daemon was stopped and another started: the new process
    # may run older code than is on disk now (two deploys a moment apart), so
    # ours replaces it in turn.
    say(f"{how}; upgrading that one")
    return upgrade(path, control, timeout, owner=owner)


class _MovedOn(Exception):
    """The pidfile names another daemon than the one asked; ``how`` says how it came."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


def _moved_on(path: str, pid: int, pidfd: int, taker: Taker | None) -> _MovedOn | None:
    """Whether the pidfile moved on from ``pid`` to another daemon since we looked, and how.

    ``taker``: :func:`._taken_over.lock_taker` of ``path``, read before ``pid``
    was verified as its holder. Without it, a holder of
    another lock than its own is taken for an upgrade's new process only
    while ``pid`` still runs (it keeps its lock until it exits).
    """
    holder = read_pidfile(path).running_pid
    if holder is None or holder == pid:
        return None
    exited = readable(pidfd, 0)
    if taken_over(path, pid, taker=taker) == holder and (taker is not None or not exited):
        return _MovedOn(f"pid {pid} was upgraded to pid {holder} meanwhile")
    if not exited:
        return None
    # Stopped (or dead), and another daemon took the pidfile since.
    since = "was started since" if taker is not None else "holds the pidfile now"
    return _MovedOn(f"pid {pid} exited meanwhile and pid {holder} {since}")


def _gone(path: str, pid: int, pidfd: int, taker: Taker | None, how: str = "") -> int:
    """Say that ``pid`` exited in its last steps and nothing was upgraded; the exit code (1).

    As ``reload`` says of a daemon that exits while it asks (``pid N exited;
    nothing reloaded``): the command found a daemon, and it went. ``how``:
    what to add after "exited". One whose last steps outlast the grace is said
    to be stopping.

    Raises:
        _MovedOn: another daemon holds the pidfile by now.
    """
    if not readable(pidfd, _EXIT_WAIT):
        why = "exiting, or the file was removed"
        say(f"upgrade refused: pid {pid} no longer holds {path} ({why}); nothing sent")
        return ControlCode.FAILURE
    moved = _moved_on(path, pid, pidfd, taker)
    if moved is not None:
        raise moved
    say(f"pid {pid} exited{how}; nothing upgraded")
    return ControlCode.FAILURE


def _by_signal(path: str, pid: int, pidfd: int, timeout: float, taker: Taker | None) -> int:
    """SIGUSR2 and its outcome (see :mod:`._signalled_upgrade`), one command per daemon at once.

    Raises:
        _MovedOn: the pidfile names another daemon than ``pid`` by now.
    """
    from ._stop_claim import claim_signal

    # The daemon refuses a second upgrade during one only in its log: each
    # command would see the one new process take over and call it its own.
    claim = claim_signal(pid, "upgrade")
    if isinstance(claim, int):
        by = f"`aiodaemon upgrade` pid {claim} signalled pid {pid}"
        say(f"upgrade failed: an upgrade is already in progress ({by}); nothing sent")
        return ControlCode.FAILURE
    try:
        # Looked at once the claim is ours: an upgrade that held it may have handed over.
        moved = _moved_on(path, pid, pidfd, taker)
        if moved is not None:
            raise moved
        if readable(pidfd, 0) or read_pidfile(path).running_pid is None:
            # Its last steps (its control socket gone, say): SIGUSR2 ignored to
            # the end, which the signal's path would take for a program that
            # ignores it ("use 'aiodaemon restart'").
            return _gone(path, pid, pidfd, taker)
        return upgrade_by_signal(path, pid, pidfd, timeout, taker, _after_death)
    finally:
        claim.close()


def _by_control(
    control: str,
    path: str,
    pid: int,
    pidfd: int,
    timeout: float,
    taker: Taker | None,
) -> int | None:
    """Ask for the upgrade and its result; None when there is no control socket to ask.

    Raises:
        _MovedOn: the socket is served by another daemon than ``pid``, which
            the pidfile names now (see :func:`_moved_on`).
    """
    started = time.monotonic()
    deadline = started + timeout + HANDOVER_GRACE
    #: the daemon's last answer: its "not now" (while starting, say) once asked again.
    answered: list[dict[str, Any]] = []

    def ask_once() -> dict[str, Any]:
        # The new process gets what is left of --timeout after waiting for a slot.
        left = request_timeout(started + timeout, timeout)
        request = {"v": VERSION, "cmd": "upgrade", "timeout": left}
        waited = left + HANDOVER_GRACE
        answer = ask_holder(control, request, holder=pid, timeout=waited, said=waited)[0]
        answered[:] = [answer]
        return answer

    def say_waiting(error: str) -> None:
        say(f"{error} (pid {pid}); trying again for up to {seconds_shown(timeout)} s")

    try:
        answer = ask_patiently(ask_once, until=started + timeout, on_refusal=say_waiting)
    except ControlBusy as exc:
        say(f"upgrade failed: {exc} (pid {pid}); nothing started")
        return ControlCode.FAILURE
    except (ControlAbsent, ControlRefused):
        if not answered:
            return None  # none there, or not served yet: SIGUSR2 instead
        # It answered "not now", and its socket is gone since: the daemon's last
        # steps (a start that failed while we waited for it to be ready). Its
        # state, not its words, says why (see _run._upgrade_service).
        starting = answered[0].get("state") == "starting"
        return _gone(path, pid, pidfd, taker, " before it was ready" if starting else "")
    except ControlUntrusted as exc:
        moved = _moved_on(path, pid, pidfd, taker)
        if moved is not None:
            raise moved from None
        # Not the daemon's socket: it has none there, as with --no-control.
        say_ignored(exc, f"sending SIGUSR2 to pid {pid}")
        return None
    except ControlDenied as exc:
        say(str(exc))
        return ControlCode.NO_PERMISSION
    except ControlVersionMismatch as exc:
        # Refused before anything began. Not SIGUSR2 instead: its outcome is
        # followed on a control socket whose answers this side cannot read.
        say(f"upgrade refused: {exc}; nothing started: use 'aiodaemon restart'")
        return ControlCode.FAILURE
    except ControlError as exc:
        # A daemon that dies closes its connections a moment before its pidfd
        # reports the exit: give the exit that moment.
        if readable(pidfd, _EXIT_WAIT):
            return _after_death(path, control, pid, deadline, taker)
        if isinstance(exc, ControlTimeout):
            # Its loop held up, say: a request it reads once we have left is
            # dropped (nobody waits for it), one it began runs to its end.
            held = suspension(pid)
            why = "" if held is None else f": it is {held.state}"
            say(f"{exc}{why}; {_UNREAD}: the daemon's log says what became of it")
        elif isinstance(exc, ControlNoAnswer) and exc.out_of_descriptors:
            # Out of descriptors, it dropped the connection before reading a byte.
            say(f"{exc}; nothing started")
        else:
            say(f"{exc}; the daemon's log says what became of the upgrade")
        return ControlCode.FAILURE
    new = answer.get("pid")
    if answer.get("ok") and isinstance(new, int) and not isinstance(new, bool):
        write_line(str(new))
        return ControlCode.OK
    error = answer.get("error")
    if not isinstance(error, str):
        say("upgrade failed")
    elif error.startswith(_STOPPING):
        # The words of the signal's path, with the pid: one line per state.
        say(stopping_line(pid))
    elif error.startswith("upgrade "):
        # "upgrade abandoned: the daemon is stopping": named as the refusal is.
        say(error.replace(_STOPPING, f"pid {pid} is stopping"))
    else:
        say(f"upgrade failed: {error}")
    return ControlCode.FAILURE


def _after_death(
    path: str, control: str | None, old: int, deadline: float, taker: Taker | None
) -> int:
    """The old daemon exited before it handed over: tell whether its successor took over.

    The successor claims the pidfile (whose lock it already shares: ``taker``,
    see :func:`._taken_over.inherited`) as soon as the old daemon is gone, and
    reports running once its startup hooks are done (asked on ``control``;
    without one, the claim is all we learn). A holder of another lock is a
    daemon started afresh since, not the successor. Not a hand-over, so never
    0: requests the old daemon held died with it.
    """
    died = f"pid {old} exited during the upgrade, before it handed over"
    new = None
    state = "starting"
    while (left := deadline - time.monotonic()) > 0:
        reading = read_pidfile(path)
        if reading.running_pid not in (None, old):
            if reading.running_pid != new and not inherited(path, taker):
                new, state = reading.running_pid, "fresh"
                break
            new = reading.running_pid
            if control is None:
                state = ""
                break
            state = _state_of(control, new, left) or state
            if state != "starting":
                break
        elif reading.status in (PidfileStatus.ABSENT, PidfileStatus.DEAD):
            # Nobody holds the lock: the successor is gone too.
            state = "gone"
            break
        time.sleep(0.05)
    if state == "fresh":
        say(f"{died}; no successor took over: pid {new} was started afresh since, not upgraded")
    elif new is None or state == "gone":
        say(f"{died}; no successor runs: not running")
    elif state == "starting":
        say(f"{died}; its successor (pid {new}) took over but is still starting")
    elif not state:
        say(f"{died}; its successor (pid {new}) took over")
    else:
        say(f"{died}; its successor (pid {new}) took over and is {state}")
    return ControlCode.FAILURE


def _state_of(control: str, pid: int, within: float) -> str | None:
    """The state ``pid`` reports on the control socket; None when it does not answer (yet)."""
    request = {"v": VERSION, "cmd": "status"}
    try:
        answer = ask(control, request, holder=pid, timeout=min(within, 2.0))
    except ControlError:
        return None
    state = answer.get("state")
    return state if isinstance(state, str) else None
