"""Act on a running daemon through its pidfile: find its verified holder, signal it, wait.

The parts ``stop``, ``reload`` and ``upgrade`` share (``status`` only reads:
:mod:`._status_command`). Only a verified lock holder is ever signalled (see
:func:`read_pidfile`): a pid in a stale file may belong to an unrelated process
by now. Signals go through a pidfd opened *before* the holder is verified a
second time, so the process we signal is the one we verified even if the pid
is recycled in between; the commands ask the control socket only on behalf of
that same verified holder (:func:`._control_trust.ask_holder`). Synchronous and
light: no asyncio, structlog or runtime.
"""

from __future__ import annotations

import enum
import os

from .._prefork._messages import say
from .._prefork._pidfile_status import PidfileState, PidfileStatus, read_pidfile
from .._prefork._readiness import open_pidfd
from ._lost_pidfile import names_no_pid, wait_for_pid, why_no_pid
from ._pidfile_trust import untrusted_pidfile

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    #: Paths stay plain strings here: importing pathlib costs a control command ~2 ms.
    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["ControlCode"]


class ControlCode(enum.IntEnum):
    """LSB exit codes of ``stop`` and ``reload`` (init-script actions)."""

    OK = 0
    FAILURE = 1
    #: LSB "user had insufficient privilege": the daemon is another user's.
    NO_PERMISSION = 4
    #: the pidfile is locked but holds no pid: "unknown", the code ``status`` gives.
    UNKNOWN = 4
    #: LSB "program is not running", for ``reload``.
    NOT_RUNNING = 7


_say = say


#: Hand-overs (upgrades) followed while the holder is verified, before giving up.
_HANDOVERS_FOLLOWED = 3


def _holder(
    path: StrPath,
    *,
    not_running: int,
    remove_stale: bool = False,
    control: StrPath | None = None,
    owner: int | None = None,
    action: str | None = None,
    find_timeout: float | None = None,
    exiting: Callable[[int, int], int] | None = None,
) -> tuple[int, int] | int:
    """The verified lock holder's pid and a pidfd on it, or the exit code when there is none.

    With ``remove_stale``, a pidfile nobody holds is removed, with ``control``
    (the socket beside it) when that is stale too. A pidfile removed or
    emptied by hand while its daemon runs: the daemon is found through
    ``control`` or its lock (see :mod:`._lost_pidfile`); ``action`` names a
    command that refuses to act on it then (``upgrade``). ``owner``: the
    daemon's uid, when the caller said. ``find_timeout``: seconds the daemon
    found over ``control`` has to answer, when shorter than the default.

    A daemon in its last steps, its pidfile already removed or emptied (see
    :mod:`._exiting`), is not "not running": ``exiting(pid, pidfd)`` gives
    the exit code then (it closes the pidfd); without it, nothing is sent and
    the code is 1.
    """
    untrusted = untrusted_pidfile(path, owner)
    if untrusted is not None:
        _say(f"{untrusted}: nothing signalled, nothing removed")
        return ControlCode.FAILURE
    state = read_pidfile(path)
    # A locked empty pidfile was given its moment to show a pid while looking.
    waited = state.status is PidfileStatus.RUNNING and state.pid is None
    # DEAD too: a pidfile replaced while its daemon runs on (see find_replaced).
    if names_no_pid(state) or state.status is PidfileStatus.DEAD:
        from ._lost_holder import find_without_pid

        found = find_without_pid(path, state, control, owner, timeout=find_timeout)
        if isinstance(found, int):
            return found
        if found is not None:
            if action is not None:
                _say(f"pid {found[0]} runs, but {why_no_pid(path, state)}; not {action}")
                os.close(found[1])
                return ControlCode.FAILURE
            return found
    state = read_pidfile(path) if waited else wait_for_pid(path)
    pid = state.running_pid
    if pid is None:
        last = _in_last_steps(path, state, owner, exiting)
        if last is not None:
            return last
        if remove_stale and state.status is PidfileStatus.DEAD:
            return _clean_stale(path, state, not_running, control)
        if remove_stale and state.status is PidfileStatus.ABSENT and control is not None:
            return _clean_stale_control(path, not_running, control, owner)
        return _not_running(path, state, not_running)
    for _ in range(_HANDOVERS_FOLLOWED):
        pidfd = _open_verified(path, pid)
        if pidfd is not None:
            return pid, pidfd
        state = read_pidfile(path)
        now = state.running_pid
        if now is None or now == pid:
            break
        # Handed over meanwhile (an upgrade's new process wrote its pid over
        # the old one's): the daemon runs on in its new process.
        pid = now
    last = _in_last_steps(path, state, owner, exiting)
    if last is not None:
        return last
    _say(f"not running (pid {pid} exited before it was signalled)")
    return not_running


def _in_last_steps(
    path: StrPath,
    state: PidfileState,
    owner: int | None,
    exiting: Callable[[int, int], int] | None,
) -> int | None:
    """The exit code for a daemon still exiting with its pidfile gone or emptied; None if none.

    ``state``: the pidfile's reading, missing or empty and unlocked (else
    nothing is looked for). See :func:`_holder` for ``exiting``.
    """
    emptied = state.status is PidfileStatus.DEAD and state.pid is None and not state.unparsable
    if state.status is not PidfileStatus.ABSENT and not emptied:
        return None
    from ._exiting import open_exiting  # only when no daemon holds the pidfile

    found = open_exiting(path, owner)
    if found is None:
        return None
    pid, pidfd = found
    if exiting is not None:
        return exiting(pid, pidfd)
    os.close(pidfd)
    how = "emptied" if emptied else "removed"
    _say(f"pid {pid} is stopping (it has {how} its pidfile {path} and exits); nothing sent")
    return ControlCode.FAILURE


def _not_running(path: StrPath, state: PidfileState, code: int) -> int:
    """Report a pidfile with no live holder; UNKNOWN is never treated as "not running"."""
    if state.denied:
        # A pidfile the daemon's umask made private to its user (or a private
        # run directory): the caller lacks the privilege, as when the file is
        # readable but the signal is refused (4), whatever the daemon's umask.
        _say(f"not allowed: {state.detail}; nothing signalled: run as the daemon's user or as root")
        return ControlCode.NO_PERMISSION
    if state.status is PidfileStatus.UNKNOWN or state.unparsable:
        # Unparsable, though nobody holds it: `status` says "unknown" (4), never
        # "not running" (7), of a file that may not be a pidfile at all.
        _say(f"cannot tell whether the daemon runs, nothing signalled: {state.detail}")
        # Locked, yet no pid in it: `status` says "unknown" (4); for an action
        # LSB's 4 means "not allowed", so this is a failure like the other
        # holders that cannot be verified.
        return ControlCode.FAILURE
    if state.status is PidfileStatus.RUNNING:
        if state.detail != "starting":
            _say(f"{state.detail}; nothing signalled")
            return ControlCode.FAILURE
        _say(f"{path} is locked but holds no pid, and its holder is unknown; nothing signalled")
        return ControlCode.FAILURE
    if state.status is PidfileStatus.ABSENT:
        _say(f"not running (no pidfile {path})")
    elif state.pid is None:
        _say(f"not running ({state.detail or f'empty pidfile {path}'})")
    else:
        _say(f"not running (stale pidfile {path} names pid {state.pid}; not signalled)")
    return code


def _clean_stale_control(path: StrPath, code: int, control: StrPath, owner: int | None) -> int:
    """No pidfile: remove the control socket a killed daemon left beside it, if it is one; say so.

    Its pidfile removed by hand, then killed (SIGKILL, the OOM killer): nobody
    listens there any more (a daemon serving it was looked for already).
    """
    from ._stale import remove_stale_control

    if os.path.lexists(control) and remove_stale_control(control, path, owner):
        _say(f"not running (no pidfile {path}); removed its stale control socket {control}")
    else:
        _say(f"not running (no pidfile {path})")
    return code


def _clean_stale(path: StrPath, state: PidfileState, code: int, control: StrPath | None) -> int:
    """Remove the pidfile a dead daemon left (nobody holds its lock), and its socket; say so."""
    from ._stale import remove_stale

    if state.unparsable:
        # Not a file aiodaemon wrote (a mistyped --pidfile could name any file
        # on the system): never removed.
        # In the words `status` uses; exit 0 all the same: nobody holds its lock,
        # so nothing is left to stop, and `restart` goes on (`start` refuses it).
        _say(f"nothing to stop: {state.detail} (not a pidfile?); left alone")
        return code
    named = f"it named pid {state.pid}" if state.pid is not None else "it was empty"
    removed = remove_stale(path, state.pid, control=control)
    if removed.pidfile:
        also = f" and its stale control socket {control}" if removed.control else ""
        _say(f"not running; removed stale pidfile {path} ({named}){also}")
    else:
        _say(f"not running; stale pidfile {path} ({named}) could not be removed")
    return code


def _open_verified(path: StrPath, pid: int) -> int | None:
    """A pidfd for ``pid``, only if that very process holds the pidfile lock."""
    pidfd = open_pidfd(pid)
    if pidfd is None:
        return None
    # Verified after the pidfd exists: if the pid was recycled before
    # pidfd_open, the new process does not hold the lock and we refuse.
    if read_pidfile(path).running_pid != pid:
        os.close(pidfd)
        return None
    return pidfd


def _send(pidfd: int, pid: int, signum: int) -> bool:
    """Signal the process behind ``pidfd``; False (and a message) when not allowed."""
    import signal  # here: `status` never signals, and the import costs it ~0.5 ms

    try:
        signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:
        pass  # already gone: what stop wanted, and a reload has nobody left to reload
    except PermissionError:
        name = signal.Signals(signum).name
        _say(f"not allowed to send {name} to pid {pid}: run as its user or as root")
        return False
    return True
