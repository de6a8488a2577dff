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
running" as before. Synchronous and light, for the CLI.
"""

from __future__ import annotations

import enum
import os
import time

from .._prefork._config import Options
from .._prefork._control_protocol import VERSION
from .._prefork._messages import say, seconds_shown
from .._prefork._pidfile_status import says_stopping
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


class Verdict(enum.Enum):
    """What the daemon holding the pidfile came to, as far as the command can tell."""

    #: ready (running, reloading), or it cannot say: "already running".
    RUNNING = "running"
    #: gone: nothing holds the pidfile now, unless another start took it since.
    EXITED = "exited"
    #: stopping: waited for as any stopping daemon (see :mod:`._start_after_stop`).
    STOPPING = "stopping"


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
        RUNNING when the holder is ready, or cannot say; EXITED once it is
        gone (said when it had said it was starting); STOPPING when it stops
        before it said it was starting.

    Raises:
        StillStarting: it was still starting at the end of ``wait`` (said on stderr).
        StillStopping: it stopped before it was ready and did not exit within
            the stop budget (said on stderr).
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
    try:
        verdict = _wait(control, pid, pidfd, wait)
        if verdict is not None:
            return verdict
        # It said it was starting, and we that we wait: its end is ours to wait for,
        # through the pidfd we hold (its pidfile goes a moment before its sockets).
        say(f"pid {pid} stopped before it was ready; starting once it has exited")
        if not wait_exited(pidfd, wait.stop_budget):
            budget = seconds_shown(wait.stop_budget)
            say(f"pid {pid} still stopping after {budget} s; nothing started")
            raise StillStopping(pid)
        return Verdict.EXITED
    finally:
        os.close(pidfd)


def _wait(control: str, pid: int, pidfd: int, wait: StartWait) -> Verdict | None:
    """Ask ``pid`` (verified, ``pidfd`` on it) its state until it is no longer starting.

    None: it said it was starting, and then stopped or exited before it was ready.
    """
    said = False  # it answered "starting", and we said we wait
    refused_since: float | None = None
    while True:
        if readable(pidfd, 0):
            return None if said else Verdict.EXITED
        if says_stopping(pid):
            return None if said else Verdict.STOPPING
        state = _state_of(control, pid, wait.deadline)
        if state == "stopping" or (state in ("gone", "refused") and said):
            # Stopping, or its socket removed, closed or dropping us: its last steps.
            return None if said else Verdict.STOPPING
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
        elif state != "starting":
            return Verdict.RUNNING  # ready, or no control socket of its own ("gone")
        elif not said:
            said = True
            say(f"pid {pid} is starting; waiting for it to be ready")
        left = wait.deadline - time.monotonic()
        if left <= 0:
            break
        readable(pidfd, min(_POLL, left))  # wakes at once if it exits
    if said:
        say(f"pid {pid} still starting after {seconds_shown(wait.timeout)} s; nothing started")
        raise StillStarting(pid)
    return Verdict.RUNNING  # never said it starts (a socket not served all along)


def _state_of(control: str, pid: int, deadline: float) -> str | None:
    """The state ``pid`` answers on ``control``; "refused", "gone", or None (no answer)."""
    timeout = max(0.1, min(_ASK_TIMEOUT, deadline - time.monotonic()))
    try:
        answer = ask_holder(control, {"v": VERSION, "cmd": "status"}, holder=pid, timeout=timeout)
    except ControlRefused:
        return "refused"
    except (ControlAbsent, ControlNoAnswer, ControlUntrusted):
        # None there, dropping us, or not the daemon's: it says nothing on it.
        return "gone"
    except ControlError:
        return None  # held up, busy, not ours to use: nothing to go by
    state = answer[0].get("state")
    return state if isinstance(state, str) else None
