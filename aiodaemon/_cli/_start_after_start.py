"""``start`` (and ``run``) beside a daemon that is still starting: wait for its verdict.

A daemon whose startup hooks run already holds its pidfile, so a second
``start`` (an operator's beside a deploy script's, Ansible retrying) found it
"already running", exited 0 and started nothing; a moment later the first
start failed and nothing ran, while the exit 0 had told systemd, the script or
the operator that the service was up. As for a stopping daemon (see
:mod:`._start_after_stop`), the command waits for what the first start comes
to, within the new daemon's own ``start_timeout``: ready, it is "already
running"; stopped or exited before it was ready (its start failed, or it was
stopped), it is waited for until it has exited (within the new daemon's stop
budget, through a pidfd: its pidfile goes a moment before its sockets), and
the command starts as usual, since nothing runs. Only a daemon that says it
is starting is waited for: its control socket answers ``starting``, after a
moment's grace for one bound but not served yet (a daemon on its way to its
event loop); a daemon without a control socket cannot say, and is "already
running" as before. One whose socket goes before it answered (a start that
lost the race to another, which failed between two questions: bound, not
served yet, then removed by its exit), or that says it stops before it said
it was starting, is waited for as a stopping daemon, until its process has
exited, and the command decides again.

A daemon may become ready and be stopped (a deliberate ``stop``) between two
questions: then it is "already running" as a question a moment earlier would
have found it, the stop said, and nothing is started over that stop. Its
control socket says whether it was ready (``ready`` in its status answer,
kept while it stops); past that socket's close, or once it is gone, its exit
does, told to a watch the command holds from the moment the daemon says it is
starting (see :func:`._stop_claim.watch_stop`). Synchronous and light, for the CLI.
"""

from __future__ import annotations

import enum
import os
import time

from .._prefork._config import Options
from .._prefork._control_protocol import VERSION, ProtocolError, decode
from .._prefork._messages import say, seconds_shown
from .._prefork._pidfile_status import read_pidfile, says_stopping
from .._prefork._readiness import readable, wait_exited
from ._control import _open_verified
from ._control_client import (
    ControlAbsent,
    ControlError,
    ControlNoAnswer,
    ControlRefused,
    ControlUntrusted,
)
from ._control_trust import ask_holder
from ._lost_pidfile import wait_for_pid
from ._start_after_stop import StillStopping, stop_budget
from ._stop_claim import Claim, watch_stop

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = ["StartWait", "StillStarting", "Verdict", "wait_for_starting_daemon"]

#: Seconds to wait for one status answer: a daemon answers at once unless its loop is held.
_ASK_TIMEOUT = 2.0
#: Seconds between two questions to a daemon still starting.
_POLL = 0.1
#: How long a control socket bound but not served yet counts as a daemon on its
#: way to its event loop; past it, a leftover file beside a daemon run without one.
_NOT_SERVING_GRACE = 5.0
#: How long a daemon that holds its pidfile without a control socket there is
#: asked again: one whose start failed closes its socket before its pidfile goes.
_UNANSWERED_GRACE = 1.0
#: Longest read of how the daemon ended, once it is gone (its end is closed by then).
_TOLD_WAIT = 1.0


class Verdict(enum.Enum):
    """What the daemon holding the pidfile came to, as far as the command can tell."""

    #: ready (running, reloading), or it cannot say: "already running".
    RUNNING = "running"
    #: ready, and stopping or stopped since (a stop between two questions):
    #: "already running", said with what came after.
    WAS_READY = "was ready"
    #: gone: nothing holds the pidfile now, unless another start took it since.
    EXITED = "exited"


class StillStarting(Exception):
    """The daemon was still starting when the wait ran out; nothing was started (said)."""


class StartWait:
    """How long a command waits for daemons still starting: its own ``start_timeout``, in all.

    One budget for the whole command: a start that failed may be followed by
    another command's start, which is waited for within what is left. A start
    that fails is then waited for as a stop (see :func:`._start_after_stop.stop_budget`).
    """

    def __init__(self, options: dict[str, Any]) -> None:
        default: float = Options._field_defaults["start_timeout"]
        #: the new daemon's start_timeout, as given: the figure the message shows.
        self.timeout = float(options.get("start_timeout", default))
        self.deadline = time.monotonic() + self.timeout
        self.stop_budget = stop_budget(options)


def wait_for_starting_daemon(pidfile: str, control: str | None, wait: StartWait) -> Verdict:
    """Wait for the daemon holding ``pidfile`` to end its start, if it says it is starting.

    Args:
        pidfile: the pidfile.
        control: its daemon's control socket; None: the daemon cannot say.
        wait: the command's budget for it.

    Returns:
        RUNNING when the holder is ready, or cannot say; WAS_READY when it
        said it was starting, became ready and then stopped or began to stop
        ("already running" said, with that); EXITED once it is gone (said when
        it had said it was starting, or stopped before it said so).

    Raises:
        StillStarting: it was still starting at the end of ``wait`` (said on stderr).
        StillStopping: it stopped before it was ready, or without saying
            whether it was, and did not exit within the stop budget (said on stderr).
    """
    if control is None:
        return Verdict.RUNNING
    # A locked pidfile still empty: the daemon writes its pid in a moment.
    state = wait_for_pid(pidfile)
    pid = state.running_pid
    if pid is None:
        # Locked but empty for long, or no holder in the pidfile at all (one found
        # over its control socket, its pidfile removed or replaced): it cannot say.
        return Verdict.RUNNING
    pidfd = _open_verified(pidfile, pid)
    if pidfd is None:
        return Verdict.EXITED  # gone since
    # Seen once its pid is written (its socket is bound before): a socket gone
    # since was removed by its exit.
    had_socket = os.path.lexists(control)
    watch = _ExitWatch(pid)
    try:
        ended = _wait(pidfile, control, pid, pidfd, wait, watch, had_socket=had_socket)
        if isinstance(ended, Verdict):
            return ended
        return _after_start(pidfile, pid, pidfd, ended, watch, wait)
    finally:
        os.close(pidfd)
        watch.close()


def _after_start(
    pidfile: str, pid: int, pidfd: int, ready: bool | None, watch: _ExitWatch, wait: StartWait
) -> Verdict:
    """The verdict on ``pid``, which said it was starting and then stopped or exited (said).

    ``ready``: whether it had been ready, as its control socket said; None:
    it did not say (its socket closed or gone, its loop held up, an older
    aiodaemon), and its exit, told on ``watch``, says instead.
    """
    if ready:
        # Ready when a question a moment earlier would have found it so: the
        # stop was meant for a running daemon, and no start undoes it.
        say(f"already running (pid {pid}, pidfile {pidfile}); it has since begun stopping")
        return Verdict.WAS_READY
    if ready is None:
        _wait_exited(pid, pidfd, wait)
        if watch.told_ready():
            say(f"already running (pid {pid}, pidfile {pidfile}); it has since stopped")
            return Verdict.WAS_READY
        # Not ready, or nothing told (no watch free, /proc hidden, killed, an
        # older aiodaemon): as a failed start, which is all we could tell before.
        say(f"pid {pid} stopped before it was ready; starting once it has exited")
        return Verdict.EXITED
    # It said it was starting, and we that we wait: its end is ours to wait for,
    # through the pidfd we hold (its pidfile goes a moment before its sockets).
    say(f"pid {pid} stopped before it was ready; starting once it has exited")
    _wait_exited(pid, pidfd, wait)
    return Verdict.EXITED


def _wait_exited(pid: int, pidfd: int, wait: StartWait) -> None:
    """Wait for ``pid`` (``pidfd`` on it) to exit within the stop budget.

    Raises:
        StillStopping: it did not (said on stderr).
    """
    if not wait_exited(pidfd, wait.stop_budget):
        budget = seconds_shown(wait.stop_budget)
        say(f"pid {pid} still stopping after {budget} s; nothing started")
        raise StillStopping(pid)


class _ExitWatch:
    """Where a daemon that said it was starting tells its exit, and whether it had been ready.

    Held from the moment it says it is starting: a daemon stopped just after it
    became ready may be gone by the next question, with its control socket.
    One of the watches a waiting ``stop`` listens on (see ``_stop_claim``).
    """

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._claim: Claim | None = None

    def begin(self) -> None:
        """Listen from now on."""
        if self._claim is None:
            self._claim = watch_stop(self._pid)

    def told_ready(self) -> bool:
        """Whether the exit the daemon told (it is gone by now) says it had been ready."""
        if self._claim is None:
            return False
        ready = False
        for line in self._claim.told(self._pid, _TOLD_WAIT).split(b"\n")[:-1]:
            try:
                message = decode(line)
            except ProtocolError:
                continue
            # The last line with an exit is how it ended (a forced exit after the graceful one).
            if "exit" in message:
                ready = message.get("ready") is True
        return ready

    def close(self) -> None:
        """Stop listening."""
        if self._claim is not None:
            self._claim.close()
            self._claim = None


def _after_stopping(pid: int, pidfd: int, wait: StartWait) -> Verdict:
    """Wait for ``pid``, stopping before it said it was starting, to exit (said).

    It says it stops, or its control socket went before it answered (a start
    that failed between two questions: bound, not served yet, then removed by
    its exit). Waited for here, through the pidfd we hold, until it has exited:
    its pidfile and stopping mark go a moment before its exit, and the
    caller's wait for a stopping daemon, looking at them then, found nothing
    stopping and said "already running", exit 0, of a daemon on its way out.
    Then nothing holds the pidfile, unless another start took it since, and
    the caller decides again.

    Raises:
        StillStopping: it did not exit within the stop budget (said on stderr).
    """
    if readable(pidfd, 0):
        return Verdict.EXITED  # its last steps are over: nothing to say
    say(f"pid {pid} is stopping; starting once it has exited")
    _wait_exited(pid, pidfd, wait)
    return Verdict.EXITED


def _wait(
    pidfile: str,
    control: str,
    pid: int,
    pidfd: int,
    wait: StartWait,
    watch: _ExitWatch,
    *,
    had_socket: bool,
) -> Verdict | bool | None:
    """Ask ``pid`` (verified, ``pidfd`` on it) its state until it is no longer starting.

    Once it said it was starting (``watch`` listening from then on), and then
    stopped or exited: whether it had been ready by then, as its control
    socket says; None when it does not say. EXITED, once it has exited, when
    it stopped or its socket went before it answered (see
    :func:`_after_stopping`); ``had_socket``: the socket file was there once
    its pid was written.
    """
    said = False  # it answered "starting", and we said we wait
    refused_since: float | None = None
    unanswered_since: float | None = None
    while True:
        if readable(pidfd, 0):
            return None if said else Verdict.EXITED
        stopping = says_stopping(pid)
        if stopping and not said:
            return _after_stopping(pid, pidfd, wait)
        # Asked even when its stopping mark says it stops: its socket also says
        # whether it was ready by then.
        state, ready = _state_of(control, pid, wait.deadline)
        if said and (stopping or state in ("stopping", "gone", "dropped", "foreign", "refused")):
            # Stopping, or its socket removed, closed or dropping us: its last steps.
            return ready if state == "stopping" else None
        if state == "stopping":
            return _after_stopping(pid, pidfd, wait)
        if state == "refused":
            # Bound, not served yet: a daemon on its way to its event loop.
            now = time.monotonic()
            refused_since = now if refused_since is None else refused_since
            if now - refused_since > _NOT_SERVING_GRACE:
                return Verdict.RUNNING  # a leftover file: the daemon cannot say
        elif state is None:
            if not said:
                return Verdict.RUNNING  # no answer to go by: as before, "already running"
            # Its loop held up (sync code in a startup hook): still starting.
        elif state in ("gone", "dropped", "foreign"):
            # Not said yet. Its socket there (before it answered, or seen bound)
            # and removed since, which only its exit does, or it ends: its start
            # failed between two questions. Else it has no socket there (another
            # --control, none), drops us while it runs (out of descriptors), or
            # another process serves there (an upgrade handing over): it cannot say.
            removed = state == "gone" and (had_socket or refused_since is not None)
            if removed or _ending(pidfile, pid, pidfd):
                return _after_stopping(pid, pidfd, wait)
            # Its socket closes a moment before its pidfile goes (its last
            # records drain in between): asked again, briefly, before "running".
            now = time.monotonic()
            unanswered_since = now if unanswered_since is None else unanswered_since
            if now - unanswered_since > _UNANSWERED_GRACE:
                return Verdict.RUNNING
        elif state != "starting":
            return Verdict.RUNNING  # ready
        elif not said:
            said = True
            say(f"pid {pid} is starting; waiting for it to be ready")
            watch.begin()
        left = wait.deadline - time.monotonic()
        if left <= 0:
            break
        readable(pidfd, min(_POLL, left))  # wakes at once if it exits
    if said:
        say(f"pid {pid} still starting after {seconds_shown(wait.timeout)} s; nothing started")
        raise StillStarting(pid)
    return Verdict.RUNNING  # never said it starts (a socket not served all along)


def _ending(pidfile: str, pid: int, pidfd: int) -> bool:
    """Whether ``pid``, verified holder of ``pidfile`` a moment ago, is on its way out.

    It has exited, says it stops, or no longer holds the pidfile (removed,
    or the next start's, whose socket then answers in its place).
    """
    return readable(pidfd, 0) or says_stopping(pid) or read_pidfile(pidfile).running_pid != pid


def _state_of(control: str, pid: int, deadline: float) -> tuple[str | None, bool | None]:
    """The state ``pid`` answers on ``control``, and whether it says it has been ready.

    The state is "refused", "gone" (no socket), "dropped" (closed unanswered),
    "foreign" (a socket not the daemon's) or None (no answer) when it gives
    none; the readiness None when it does not say (an older aiodaemon).
    """
    timeout = max(0.1, min(_ASK_TIMEOUT, deadline - time.monotonic()))
    try:
        answer = ask_holder(control, {"v": VERSION, "cmd": "status"}, holder=pid, timeout=timeout)
    except ControlRefused:
        return "refused", None
    except ControlAbsent:
        return "gone", None
    except ControlNoAnswer:
        return "dropped", None
    except ControlUntrusted:
        return "foreign", None  # not the daemon's: nothing it says
    except ControlError:
        return None, None  # held up, busy, not ours to use: nothing to go by
    state, ready = answer[0].get("state"), answer[0].get("ready")
    return (state if isinstance(state, str) else None), (ready if isinstance(ready, bool) else None)
