"""``start`` (and ``run``) of a daemon that is stopping: wait for its exit, then start.

A daemon in its shutdown still holds its pidfile, so a ``start`` racing a
``stop`` (an operator's, a deploy script's, a health checker's) found it
"already running", exited 0 and started nothing: a moment later nothing ran.
As systemd queues a start job behind a stop job, the command waits for the
stopping daemon to exit (within the new daemon's own stop budget) and then
starts. Only a daemon that says it is stopping is waited for: its stopping
mark says so (see :func:`.._prefork._pidfile_status.says_stopping`; a daemon
without a control socket has one too), or its control socket; and, briefly,
one whose socket was there but is gone, not accepted on or dropping us: what
a daemon's very last steps do to it. A daemon whose pidfile was removed or
replaced while it stops is found over its control socket (see
:mod:`._lost_pidfile`) and waited for the same way. Synchronous and light,
for the CLI.
"""

from __future__ import annotations

import os

from .._prefork._config import Options
from .._prefork._control_protocol import VERSION
from .._prefork._messages import say, seconds_shown
from .._prefork._pidfile_status import PidfileState, read_pidfile, says_stopping
from .._prefork._readiness import open_pidfd, wait_exited
from ._control import _open_verified
from ._control_client import ControlAbsent, ControlError, ControlNoAnswer, ControlRefused
from ._control_trust import ask_holder
from ._lost_pidfile import find_lost, opened_from

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = ["StillStopping", "stop_budget", "wait_for_stopping_daemon"]

#: Seconds to wait for the holder's status answer: it answers at once unless stuck.
_ASK_TIMEOUT = 2.0
#: Added to the stop budget: time to see the exit.
_MARGIN = 2.0
#: How long a daemon whose control socket just went quiet is given to exit.
_END_GRACE = 2.0


class StillStopping(Exception):
    """The stopping daemon did not exit within the wait; nothing was started (said)."""


def wait_for_stopping_daemon(
    pidfile: str, control: str | None, options: dict[str, Any], *, owner: int | None = None
) -> bool:
    """Wait for the daemon holding ``pidfile`` to exit if it says it is stopping.

    Args:
        pidfile: the pidfile.
        control: its daemon's control socket; None: its stopping mark alone tells.
        options: the new daemon's options; its ``drain_delay`` and
            ``shutdown_timeout`` bound the wait (the same program's stop).
        owner: the daemon's uid, when the caller said (``--user``).

    Returns:
        True once a stopping holder has exited; False when the holder is not
        stopping, or cannot tell (the caller reports it as running).

    Raises:
        StillStopping: it was stopping and did not exit in time (said on stderr).
    """
    # Seen before asking: a socket gone since was removed by the daemon's exit.
    had_socket = control is not None and os.path.lexists(control)
    state = read_pidfile(pidfile)
    pid = state.running_pid
    lost = pid is None
    if pid is None:
        # Its pidfile removed or replaced (an `rm` while its shutdown runs):
        # the daemon serving its control socket says whether it stops.
        pid = _lost_stopping(pidfile, state, control, owner)
        if pid is None:
            return False
    # Its stopping mark first: a daemon run without a control socket has one
    # too, and so has one whose socket closed while its last records drain.
    if not lost and not says_stopping(pid):
        if control is None or not had_socket:
            return False
        try:
            answer = ask_holder(
                control, {"v": VERSION, "cmd": "status"}, holder=pid, timeout=_ASK_TIMEOUT
            )[0]
        except (ControlAbsent, ControlRefused, ControlNoAnswer):
            # The socket removed, closed or dropping us: the daemon's last steps
            # (or a stuck one, which the grace leaves "already running").
            return _exits(pidfile, pid, _END_GRACE)
        except ControlError:
            return False  # cannot tell: it runs, as far as anyone knows
        if answer.get("state") != "stopping":
            return False
    budget = stop_budget(options)
    say(f"pid {pid} is stopping; starting once it has exited")
    if not _exits(pidfile, pid, budget, lost=lost):
        say(f"pid {pid} still stopping after {seconds_shown(budget)} s; nothing started")
        raise StillStopping(pid)
    return True


def stop_budget(options: dict[str, Any]) -> float:
    """Seconds a stopping daemon is given to exit: the new daemon's own stop, and a margin.

    ``options``: the new daemon's (the same program's stop); its ``drain_delay``
    and ``shutdown_timeout``, or what the daemon has for one not given.
    """
    drain_delay: float = Options._field_defaults["drain_delay"]
    shutdown_timeout: float = Options._field_defaults["shutdown_timeout"]
    budget = float(options.get("drain_delay") or drain_delay)
    return budget + float(options.get("shutdown_timeout", shutdown_timeout)) + _MARGIN


def _lost_stopping(
    pidfile: str, state: PidfileState, control: str | None, owner: int | None
) -> int | None:
    """The pid of the stopping daemon found serving ``control``, its pidfile lost; else None."""
    if control is None:
        return None
    found = find_lost(pidfile, state, control, owner=owner, timeout=_ASK_TIMEOUT)
    if found is None or found.answer is None or found.answer.get("state") != "stopping":
        return None
    return found.pid


def _exits(pidfile: str, pid: int, timeout: float, *, lost: bool = False) -> bool:
    """Whether the verified holder ``pid`` of ``pidfile`` is gone within ``timeout``.

    ``lost``: ``pid`` was found without its pidfile; it still has that file
    (removed or replaced since) open.
    """
    if lost:
        pidfd = open_pidfd(pid)
        # Checked after the pidfd exists: a pid recycled before is not the daemon.
        if pidfd is not None and opened_from(pid, pidfile) is not True:
            os.close(pidfd)
            pidfd = None
    else:
        pidfd = _open_verified(pidfile, pid)
    if pidfd is None:
        return True  # gone already
    try:
        return wait_exited(pidfd, timeout)
    finally:
        os.close(pidfd)
