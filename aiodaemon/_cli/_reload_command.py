"""``aiodaemon reload``: SIGHUP the daemon holding a pidfile, or ask it and wait for the result.

Through the daemon's control socket the command learns how the reload went.
A daemon without one (no socket at the path, one not served yet, or one that
is not the daemon's: see :mod:`._control_trust`) gets SIGHUP, and the command
says the result is not known. A daemon that cannot take the request now
(every control slot taken, an upgrade under way) is asked again within the
timeout, the successor once an upgrade handed over; never SIGHUP instead.
A daemon that exits while the command waits (its control socket removed on
its way out, or left by a kill) reloaded nothing, and the command says so.
Synchronous and light, for the CLI.
"""

from __future__ import annotations

import os
import time

from .._prefork._control_protocol import VERSION
from .._prefork._messages import seconds_shown
from .._prefork._pidfile_status import read_pidfile, says_stopping
from .._prefork._procfs import Suspension, signal_meets, suspension
from .._prefork._readiness import wait_exited
from ._control import ControlCode, _holder, _open_verified, _say, _send
from ._control_client import (
    ControlAbsent,
    ControlBacklogFull,
    ControlBusy,
    ControlDenied,
    ControlError,
    ControlNoAnswer,
    ControlRefused,
    ControlTimeout,
    ControlVersionMismatch,
    ask_patiently,
    out_of_descriptors,
    request_timeout,
)
from ._control_trust import ControlUntrusted, ask_holder, no_control_hint, say_ignored
from ._taken_over import taken_over

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["reload"]

#: How long ``reload`` retries a control socket that is not served yet (a
#: daemon between its acquire and its event loop) before falling back to SIGHUP.
_NOT_SERVING_GRACE = 2.0
#: Seconds a daemon that dropped the request unanswered has to be seen gone: one
#: killed right then closes its sockets a moment before its pidfd says so.
_EXIT_GRACE = 1.0
#: Seconds ``reload`` gives the daemon's answer beyond the reload's own timeout.
_ANSWER_GRACE = 2.0
#: How a daemon's refusal of a reload (or an upgrade) once it is stopping begins.
_STOPPING = "the daemon is stopping"
#: Seconds a request to a suspended daemon is given to be queued (it is not answered).
_QUEUED_WAIT = 0.2


def reload(
    path: StrPath,
    control: StrPath | None,
    *,
    timeout: float,
    wait: bool,
    owner: int | None = None,
) -> int:
    """Reload the daemon holding ``path`` and, with ``wait``, report how the reload went.

    Returns 0 when every reload hook succeeded (or, without ``wait`` or a
    control socket of the daemon's own, once SIGHUP is sent), 1 when one failed
    or the reload did not finish within ``timeout``, 7 when no daemon runs.
    """
    import signal  # here: `status` never signals, and the import costs it ~0.5 ms

    # Seen before the holder is verified: a socket gone by the time we ask was
    # removed by the daemon at the very end of its exit, not never there.
    had_socket = control is not None and os.path.lexists(control)
    # A daemon found without its pidfile answers within the bound the docs give.
    holder = _holder(
        path,
        not_running=ControlCode.NOT_RUNNING,
        control=control,
        owner=owner,
        find_timeout=timeout + _ANSWER_GRACE,
    )
    if isinstance(holder, int):
        return holder
    target = _Target(path, *holder)
    note = ""
    try:
        if wait and control is not None:
            code = _reload_and_wait(control, target, timeout, had_socket=had_socket)
            if isinstance(code, int):
                return code
            note = f"; {code}, so the result is not known"
            if code.startswith("no control socket served") and os.fspath(control) == f"{path}.ctl":
                # The default path: a daemon started with --control serves it
                # elsewhere, and a reload failing unseen exits 0 (ExecReload=);
                # one of 0.1.0 serves none (the hint says which).
                note += f" {no_control_hint(target.pid)}"
        if wait_exited(target.pidfd, 0):
            # SIGHUP would reach nobody: "reload requested", exit 0, would be a lie.
            _say(f"pid {target.pid} exited; nothing reloaded")
            return ControlCode.FAILURE
        if says_stopping(target.pid):
            # Its loop refuses reloads now, or is gone with its SIGHUP handler;
            # suspended there, it is said so, as over the control socket.
            _say(stopping_line(target.pid, suspension(target.pid)))
            return ControlCode.FAILURE
        meets = signal_meets(target.pid, signal.SIGHUP)
        if meets == "default":
            # Its default action: "reload requested", exit 0, and the daemon gone.
            _say(
                f"not reloaded: pid {target.pid} has no handler for SIGHUP, which would end it; "
                "nothing sent"
            )
            return ControlCode.FAILURE
        if meets == "ignored":
            # Started with SIGHUP ignored (nohup) and none of its own: nothing would happen.
            _say(f"not reloaded: pid {target.pid} ignores SIGHUP; nothing sent")
            return ControlCode.FAILURE
        if not _send(target.pidfd, target.pid, signal.SIGHUP):
            return ControlCode.NO_PERMISSION
        if wait and (held := suspension(target.pid)) is not None:
            # Pending until it runs again, as a request queued on its control
            # socket is, and said in the same words and status (it said
            # "reload requested", exit 0, of a reload that had not run).
            _say_held(target.pid, held)
            return ControlCode.FAILURE
    finally:
        os.close(target.pidfd)
    _say(f"reload requested (pid {target.pid}, SIGHUP){note}")
    return ControlCode.OK


class _Target:
    """The daemon to reload: the verified pidfile holder and a pidfd on it.

    An upgrade hands the pidfile on while ``reload`` waits for it to end
    (:meth:`follow`): from then on the successor is the one asked, and the one
    a SIGHUP fallback would reach.
    """

    def __init__(self, path: StrPath, pid: int, pidfd: int) -> None:
        self.path = path
        self.pid = pid
        self.pidfd = pidfd

    def handed_over(self) -> bool:
        """Whether an upgrade's new process took the pidfile over since we looked."""
        return taken_over(self.path, self.pid) is not None

    def follow(self) -> None:
        """Move on to the pidfile's holder now, if it is another verified process."""
        current = read_pidfile(self.path).running_pid
        if current is None or current == self.pid:
            return
        pidfd = _open_verified(self.path, current)
        if pidfd is not None:
            os.close(self.pidfd)
            self.pid, self.pidfd = current, pidfd


def _reload_and_wait(
    control: StrPath, target: _Target, timeout: float, *, had_socket: bool
) -> int | str:
    """Ask for a reload over the control socket: the exit code, or why SIGHUP must do.

    A transient refusal (every control slot taken, an upgrade under way) is
    asked again until ``timeout``; the reload's own wait is what is left of it.
    ``had_socket``: the socket was there when the command began.
    """
    deadline = time.monotonic() + timeout
    retried = False

    def ask_once() -> dict[str, Any]:
        nonlocal retried
        if retried:
            target.follow()
        retried = True
        left = request_timeout(deadline, timeout)
        request = {"v": VERSION, "cmd": "reload", "timeout": left}
        return _ask(control, target, request, left + _ANSWER_GRACE, had_socket=had_socket)

    def say_waiting(error: str) -> None:
        _say(f"{error} (pid {target.pid}); trying again for up to {seconds_shown(timeout)} s")

    try:
        answer = ask_patiently(ask_once, until=deadline, on_refusal=say_waiting)
    except _NoAnswer as exc:
        return exc.code
    except ControlBusy as exc:
        # Never SIGHUP instead: the command promises the reload's result, and
        # the daemon, which has a control socket, would run it unseen.
        _say(f"{exc} (pid {target.pid}); nothing reloaded")
        return ControlCode.FAILURE
    return _report(answer, target.pid)


class _Held(Exception):
    """The daemon was seen suspended while its answer was awaited."""

    def __init__(self, held: Suspension) -> None:
        self.held = held


class _NoAnswer(Exception):
    """No answer to report: an exit code, or (a str) why SIGHUP must do."""

    def __init__(self, code: int | str) -> None:
        self.code = code


def _ask(
    control: StrPath, target: _Target, request: dict[str, Any], within: float, *, had_socket: bool
) -> dict[str, Any]:
    """One reload request to the target's control socket, waiting for one not served yet.

    Raises:
        _NoAnswer: with the exit code, or why SIGHUP must do.
    """
    pid = target.pid
    deadline = time.monotonic() + _NOT_SERVING_GRACE
    absent = f"no control socket served at {control}"

    def watch() -> None:
        # Suspended while we wait (SIGSTOP, job control, a frozen cgroup): its
        # answer cannot come before it runs again, so the rest of --timeout is
        # not waited out either.
        held = suspension(pid)
        if held is not None:
            raise _Held(held)

    while True:
        # Suspended (SIGSTOP, a frozen cgroup): /proc tells at once. The request
        # is still queued, to run once the daemon runs again, but its answer is
        # not waited for: it cannot come before then.
        was_held = suspension(pid)
        if was_held is not None:
            within = min(within, _QUEUED_WAIT)
        try:
            # Never `follow`: the SIGHUP of a fallback goes to the verified `pid`.
            return ask_holder(control, request, holder=pid, timeout=within, watch=watch)[0]
        except _Held as exc:
            _say_held(pid, exc.held)
            raise _NoAnswer(ControlCode.FAILURE) from None
        except ControlAbsent:
            if had_socket:
                # Removed since we looked (while we waited for a slot, say): the
                # daemon is past its shutdown, and refuses reloads there.
                how = "exited" if wait_exited(target.pidfd, 0) else "is stopping"
                _say(f"pid {pid} {how} (its control socket is gone); nothing reloaded")
                raise _NoAnswer(ControlCode.FAILURE) from None
            raise _NoAnswer(absent) from None
        except ControlRefused:
            # Bound but not listening yet: a daemon on its way to its event loop.
            if time.monotonic() > deadline:
                raise _NoAnswer(absent) from None
            time.sleep(0.05)
        except ControlUntrusted as exc:
            if target.handed_over():
                # Served by an upgrade's new process that took over since we
                # looked (the old daemon drains): that one is the daemon now.
                target.follow()
                if target.pid != pid:
                    pid = target.pid
                    continue
            # Not the daemon's socket: it has none there, as with --no-control.
            say_ignored(exc, f"sending SIGHUP to pid {pid}")
            raise _NoAnswer(f"no trusted control socket at {control}") from None
        except ControlBacklogFull:
            if (held := suspension(pid) or was_held) is not None:
                # Filled by requests it has not read since it stopped: "busy" it is not.
                backlog = "its control socket's backlog full"
                _say(f"pid {pid} is {held.state}, {backlog}; nothing reloaded")
                raise _NoAnswer(ControlCode.FAILURE) from None
            raise  # "not now": asked again (see ask_patiently)
        except ControlTimeout:
            # Not even the daemon's own "still reloading" came: its loop has not
            # run since (suspended, held up), or never took the connection.
            after = seconds_shown(request["timeout"])
            # Whether the daemon read the request before it stopped answering, nothing
            # tells (the protocol has no receipt): read or not, the reload runs to its
            # end once the daemon runs again.
            held = suspension(pid) or was_held
            full = None if held is not None else out_of_descriptors(pid)
            if held is not None:
                # Suspended from the start or meanwhile: no "still reloading after
                # S s", which read as the daemon's own word, S a --timeout it never
                # reached, and no sync code to look for.
                _say_held(pid, held)
                raise _NoAnswer(ControlCode.FAILURE) from None
            if full is not None:
                # asyncio's loop leaves the connection in the backlog: unread for sure.
                why, when = full, "once it reads the request"
            else:
                why, when = "its event loop is held up", "to its end once its loop is free"
            _say(
                f"still reloading after {after} s (pid {pid} did not answer: "
                f"{why}; the reload runs {when})"
            )
            raise _NoAnswer(ControlCode.FAILURE) from None
        except ControlDenied as exc:
            _say(str(exc))
            raise _NoAnswer(ControlCode.NO_PERMISSION) from None
        except ControlVersionMismatch as exc:
            # Another aiodaemon's daemon, refusing our request: SIGHUP it hears,
            # as stop falls back to SIGTERM; only its result stays unknown.
            raise _NoAnswer(str(exc)) from None
        except ControlNoAnswer as exc:
            # Ending right then (killed while we asked), or out of descriptors
            # and running on: which one, its pidfd tells.
            ended = wait_exited(target.pidfd, _EXIT_GRACE)
            if ended:
                _say(f"pid {pid} exited; nothing reloaded")
            else:
                # Out of descriptors, it dropped the connection before reading a byte.
                _say(f"{exc}; nothing reloaded" if exc.out_of_descriptors else str(exc))
            raise _NoAnswer(ControlCode.FAILURE) from None
        except ControlError as exc:
            _say(str(exc))
            raise _NoAnswer(ControlCode.FAILURE) from None


def stopping_line(pid: int, held: Suspension | None = None) -> str:
    """What ``reload`` says of a daemon that is stopping, whichever way it was asked."""
    also = "" if held is None else f" and {held.state}"
    return f"pid {pid} is stopping{also}; nothing reloaded"


def _say_held(pid: int, held: Suspension) -> None:
    """Say that ``pid`` is suspended and its reload runs once it runs again.

    Unless it is stopping: it refuses reloads there, and the one asked never runs.
    """
    if says_stopping(pid):
        _say(stopping_line(pid, held))
        return
    _say(f"pid {pid} is {held.state}: the reload asked runs to its end once {held.until}")


def _report(answer: dict[str, Any], pid: int) -> int:
    """Say how the reload went, from the daemon's answer; the exit code."""
    if not answer.get("ok"):
        error = answer.get("error")
        if isinstance(error, str) and error.startswith(_STOPPING):
            # The words of the signal's path: one line per state, whatever the channel.
            _say(stopping_line(pid))
            return ControlCode.FAILURE
        _say(f"{error or 'the daemon refused the reload'} (pid {pid})")
        return ControlCode.FAILURE
    result = answer.get("reload")
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        _say(f"unreadable reload answer from pid {pid}")
        return ControlCode.FAILURE
    if not result["ok"]:
        error = str(result.get("error"))
        exiting = result.get("exiting")
        hook = result.get("hook")
        # Which of several hooks failed; a daemon before 0.2 does not say.
        what = f"reload hook {hook}" if isinstance(hook, str) and hook else "reload"
        if error.startswith("cancelled:"):
            # A stop cut the reload short: the daemon is on its way out.
            _say(f"reload {error} (pid {pid})")
        elif isinstance(exiting, int) and not isinstance(exiting, bool):
            # A hook's sys.exit(n): the daemon is not still running, it is leaving.
            _say(f"{what} failed (pid {pid}, shutting down with status {exiting}): {error}")
        elif result.get("stopping") is True:
            # Stopped from outside while the hooks ran: it is leaving too.
            _say(f"{what} failed (pid {pid}, stopping): {error}")
        else:
            _say(f"{what} failed (pid {pid}, still running): {error}")
        return ControlCode.FAILURE
    if type(result.get("hooks")) is int and result["hooks"] == 0:
        # Nothing of the program's ran: "reloaded" alone reads as if its
        # configuration were read again.
        _say(f"reloaded (pid {pid}; no reload hooks; log files reopened)")
        return ControlCode.OK
    _say(f"reloaded (pid {pid})")
    return ControlCode.OK
