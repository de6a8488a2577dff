"""Control a running daemon through its pidfile: stop, reload, status.

Only a verified lock holder is ever signalled (see :func:`read_pidfile`): a pid
in a stale file may belong to an unrelated process by now. Signals go through
a pidfd opened *before* the holder is verified a second time, so the process
we signal is the one we verified even if the pid is recycled in between.
"""

from __future__ import annotations

import enum
import fcntl
import os
import select
import signal
import time
from pathlib import Path

from ._messages import printable, say
from ._pidfile import PidfileState, PidfileStatus, read_pidfile

__all__ = ["ControlCode", "StatusCode", "reload", "status", "stop"]

#: How long to wait for a pid to appear in a freshly locked pidfile.
_STARTING_GRACE = 5.0
#: How long to wait for the process to vanish after SIGKILL.
_KILL_WAIT = 10.0


class StatusCode(enum.IntEnum):
    """LSB exit codes of ``aiodaemon status``."""

    RUNNING = 0
    DEAD = 1
    NOT_RUNNING = 3
    UNKNOWN = 4


class ControlCode(enum.IntEnum):
    """LSB exit codes of ``stop`` and ``reload`` (init-script actions)."""

    OK = 0
    FAILURE = 1
    #: LSB "user had insufficient privilege": the daemon is another user's.
    NO_PERMISSION = 4
    #: LSB "program is not running", for ``reload``.
    NOT_RUNNING = 7


_say = say


def _show(message: str) -> None:
    print(printable(message), flush=True)


def status(path: Path) -> int:
    """Print whether the daemon of ``path`` runs and return its LSB status code."""
    state = read_pidfile(path)
    if state.status is PidfileStatus.RUNNING:
        if state.pid is None and state.detail != "starting":
            _show(f"running ({state.detail})")
            return StatusCode.RUNNING
        pid = f"pid {state.pid}" if state.pid is not None else "starting, pid not yet written"
        _show(f"running ({pid}, pidfile {path})")
        return StatusCode.RUNNING
    if state.status is PidfileStatus.ABSENT:
        _show(f"not running (no pidfile {path})")
        return StatusCode.NOT_RUNNING
    if state.status is PidfileStatus.DEAD:
        if state.pid is None:
            # An empty unlocked file is what a daemon leaves when it may not unlink.
            _show(f"not running ({state.detail or f'empty pidfile {path}'})")
            return StatusCode.NOT_RUNNING
        _show(f"dead (pidfile {path} names pid {state.pid}, which does not hold it)")
        return StatusCode.DEAD
    _show(f"unknown ({state.detail})")
    return StatusCode.UNKNOWN


def stop(path: Path, timeout: float) -> int:
    """SIGTERM the daemon holding ``path``, wait ``timeout`` seconds, then SIGKILL.

    Returns 0 once the daemon is gone or when it was not running, 1 when it
    cannot be told apart from a stranger or would not die.
    """
    holder = _holder(path, not_running=ControlCode.OK)
    if isinstance(holder, int):
        return holder
    pid, pidfd = holder
    try:
        if not _send(pidfd, pid, signal.SIGTERM):
            return ControlCode.NO_PERMISSION
        if not _wait_exit(pidfd, timeout):
            _say(f"pid {pid} still running {timeout:g}s after SIGTERM; sending SIGKILL")
            _send(pidfd, pid, signal.SIGKILL)
            if not _wait_exit(pidfd, _KILL_WAIT):
                _say(f"pid {pid} did not exit after SIGKILL")
                return ControlCode.FAILURE
            # A killed daemon had no chance to remove its pidfile.
            _remove_stale(path, pid)
    finally:
        os.close(pidfd)
    _say(f"stopped (pid {pid})")
    return ControlCode.OK


def reload(path: Path) -> int:
    """SIGHUP the daemon holding ``path``; non-zero when it does not run."""
    holder = _holder(path, not_running=ControlCode.NOT_RUNNING)
    if isinstance(holder, int):
        return holder
    pid, pidfd = holder
    try:
        if not _send(pidfd, pid, signal.SIGHUP):
            return ControlCode.NO_PERMISSION
    finally:
        os.close(pidfd)
    _say(f"reload requested (pid {pid})")
    return ControlCode.OK


def _holder(path: Path, *, not_running: int) -> tuple[int, int] | int:
    """The verified lock holder's pid and a pidfd on it, or the exit code when there is none."""
    state = _wait_for_pid(path)
    pid = state.running_pid
    if pid is None:
        return _not_running(path, state, not_running)
    pidfd = _open_verified(path, pid)
    if pidfd is None:
        _say(f"not running (pid {pid} exited before it was signalled)")
        return not_running
    return pid, pidfd


def _not_running(path: Path, state: PidfileState, code: int) -> int:
    """Report a pidfile with no live holder; UNKNOWN is never treated as "not running"."""
    if state.status is PidfileStatus.UNKNOWN:
        _say(f"cannot tell whether the daemon runs, nothing signalled: {state.detail}")
        return ControlCode.FAILURE
    if state.status is PidfileStatus.RUNNING:
        if state.detail != "starting":
            _say(f"{state.detail}; nothing signalled")
            return ControlCode.FAILURE
        _say(f"daemon holding {path} has not written its pid yet; nothing signalled")
        return ControlCode.FAILURE
    if state.status is PidfileStatus.ABSENT:
        _say(f"not running (no pidfile {path})")
    elif state.pid is None:
        _say(f"not running ({state.detail or f'empty pidfile {path}'})")
    else:
        _say(f"not running (stale pidfile {path} names pid {state.pid}; not signalled)")
    return code


def _wait_for_pid(path: Path) -> PidfileState:
    """Read ``path``, giving a daemon that holds the lock a moment to write its pid."""
    deadline = time.monotonic() + _STARTING_GRACE
    while True:
        state = read_pidfile(path)
        if state.status is not PidfileStatus.RUNNING or state.pid is not None:
            return state
        if time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def _open_verified(path: Path, pid: int) -> int | None:
    """A pidfd for ``pid``, only if that very process holds the pidfile lock."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    # Verified after the pidfd exists: if the pid was recycled before
    # pidfd_open, the new process does not hold the lock and we refuse.
    if read_pidfile(path).running_pid != pid:
        os.close(pidfd)
        return None
    return pidfd


def _send(pidfd: int, pid: int, signum: int) -> bool:
    """Signal the process behind ``pidfd``; False (and a message) when not allowed."""
    try:
        signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:
        pass  # already gone: what stop wanted, and a reload has nobody left to reload
    except PermissionError:
        name = signal.Signals(signum).name
        _say(f"not allowed to send {name} to pid {pid}: run as its user or as root")
        return False
    return True


def _wait_exit(pidfd: int, timeout: float) -> bool:
    """Wait for the process behind ``pidfd`` (not our child) to exit."""
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.0, deadline - time.monotonic())
        if select.select([pidfd], [], [], left)[0]:
            return True
        if left <= 0:
            return False


def _remove_stale(path: Path, pid: int) -> None:
    """Unlink ``path`` if nobody holds its lock and it still names ``pid``.

    Taking the lock first means a daemon starting right now cannot lose its
    fresh pidfile to us.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        st = os.fstat(fd)
        current = path.stat(follow_symlinks=False)
        named = os.pread(fd, 64, 0).split(b"\n", 1)[0].strip()
        if (st.st_dev, st.st_ino) == (current.st_dev, current.st_ino) and named in (
            str(pid).encode(),
            b"",
        ):
            path.unlink()
    except OSError:
        # Locked again by a new daemon, or not ours to remove: leave it.
        pass
    finally:
        os.close(fd)
