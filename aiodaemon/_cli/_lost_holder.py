"""``stop`` and ``reload`` of a daemon whose pidfile was removed, emptied or replaced by hand.

The daemon is found as :mod:`._lost_pidfile` says, then a pidfd is opened on
it and it is found again, so the process signalled or asked is the one found
even if its pid is recycled in between. Synchronous and light, for the CLI.
"""

from __future__ import annotations

import os

from .._prefork._pidfile_status import PidfileState, PidfileStatus
from .._prefork._readiness import open_pidfd
from ._control import ControlCode, _say
from ._control_client import ControlDenied, ControlError
from ._control_trust import ControlUntrusted, say_ignored
from ._lost_pidfile import (
    find_lock_holder,
    find_replaced,
    find_through_control,
    reappeared,
    wait_for_pid,
    why_no_pid,
)

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["find_without_pid"]

#: Seconds to ask a control socket found beside a pidfile naming no pid.
_FIND_TIMEOUT = 5.0


def find_without_pid(
    path: StrPath,
    state: PidfileState,
    control: StrPath | None,
    owner: int | None,
    *,
    timeout: float | None = None,
) -> tuple[int, int] | int | None:
    """The daemon of a pidfile naming no pid and a pidfd on it, an exit code, or None.

    Args:
        path: the pidfile, missing, locked and empty, or held by nobody (``state``).
        state: its reading.
        control: the control socket beside it, if the daemon has one.
        owner: the daemon's uid, when the caller said (``--user``).
        timeout: seconds for the control socket's answer, at most
            :data:`_FIND_TIMEOUT` (its default).
    """
    wait = _FIND_TIMEOUT if timeout is None else min(timeout, _FIND_TIMEOUT)
    if state.status is PidfileStatus.DEAD:
        # Nobody holds it: a daemon that passes every check counts, else nothing is said.
        replaced = find_replaced(path, state, control, owner=owner, timeout=wait, unanswered=True)
        if replaced is None or control is None:
            return None
        served = control
        pidfd = _open_found(replaced.pid, lambda: _served_by(path, served, owner, wait))
        if pidfd is None:
            return None
        _say(f"{why_no_pid(path, state)}; pid {replaced.pid} found serving {control}")
        return replaced.pid, pidfd
    if control is not None:
        try:
            # Suspended or held up, it is found all the same: `stop` continues
            # and signals it, `reload` says why it cannot answer.
            found = find_through_control(path, control, owner=owner, timeout=wait, unanswered=True)
        except ControlUntrusted as exc:
            say_ignored(exc, "the pidfile tells")
        except ControlDenied as exc:
            _say(str(exc))
            return ControlCode.NO_PERMISSION
        except ControlError as exc:
            _say(f"{why_no_pid(path, state)}, and {exc}; nothing signalled")
            return ControlCode.FAILURE
        else:
            if found is not None and reappeared(path, found.pid):
                return None  # a start that raced ours wrote the pid meanwhile: the pidfile tells
            if found is not None:
                pidfd = _open_found(found.pid, lambda: _served_by(path, control, owner, wait))
                if pidfd is not None:
                    _say(f"{why_no_pid(path, state)}; pid {found.pid} found serving {control}")
                    return found.pid, pidfd
    # Never for one overwritten: bytes that are not a pid under a lock are as
    # likely another program's lock file, and its holder no daemon to signal.
    if state.status is PidfileStatus.RUNNING and wait_for_pid(path).pid is None:
        pid = find_lock_holder(path)
        if pid is not None:
            pidfd = _open_found(pid, lambda: find_lock_holder(path))
            if pidfd is not None:
                _say(f"{why_no_pid(path, state)}; pid {pid} found holding its lock")
                return pid, pidfd
    return None


def _served_by(path: StrPath, control: StrPath, owner: int | None, wait: float) -> int | None:
    try:
        found = find_through_control(path, control, owner=owner, timeout=wait, unanswered=True)
    except ControlError:
        return None
    return None if found is None else found.pid


def _open_found(pid: int, find_again: Callable[[], int | None]) -> int | None:
    """A pidfd for ``pid``, only if ``find_again()`` still finds that very process."""
    pidfd = open_pidfd(pid)
    if pidfd is None:
        return None
    # Found again after the pidfd exists: a pid recycled before pidfd_open
    # is not the daemon any more, and we refuse.
    if find_again() != pid:
        os.close(pidfd)
        return None
    return pidfd
