"""``aiodaemon status``: what the daemon holding a pidfile is doing, as text or JSON.

The daemon's control socket tells the most (state, uptime, addresses, last
reload), asked only on behalf of the verified lock holder (see
:func:`._control_trust.ask_holder`); without one, the pidfile and ``/proc``
tell whether it runs. The exit status is LSB's (:class:`StatusCode`). A pidfile
removed or emptied by hand while its daemon runs: the daemon is found as
:mod:`._lost_pidfile` says; removed or emptied by the daemon in its last
steps, it is stopping, found as :mod:`._exiting` says. Synchronous and light:
no asyncio, structlog or runtime.
"""

from __future__ import annotations

import enum
import json
import os
import time

from .._prefork._control_protocol import VERSION
from .._prefork._messages import printable, say, write_line
from .._prefork._pidfile_status import PidfileState, PidfileStatus, read_pidfile, says_stopping
from .._prefork._procfs import Suspension, is_zombie, stat_field, suspension
from ._control_client import (
    BUSY_PATIENCE,
    ControlAbsent,
    ControlBusy,
    ControlDenied,
    ControlError,
    ControlNoAnswer,
    ControlRefused,
    ControlTimeout,
    ControlVersionMismatch,
    ask_patiently,
)
from ._control_trust import ControlUntrusted, ask_holder, no_control_hint, say_ignored
from ._lost_pidfile import (
    ControlSuspended,
    Found,
    find_lock_holder,
    find_replaced,
    find_through_control,
    names_no_pid,
    reappeared,
    wait_for_pid,
    why_no_pid,
)
from ._pidfile_trust import untrusted_pidfile

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    #: Paths stay plain strings here: importing pathlib costs a control command ~2 ms.
    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["StatusCode", "status"]


#: Seconds a lock held by a process that cannot be the daemon is given to go
#: (a ``stop`` removing a stale pidfile holds it while it checks the control
#: socket beside, at most a second) before the status is "unknown".
_CONTESTED_PATIENCE = 1.0
_CONTESTED_PAUSE = 0.02


class StatusCode(enum.IntEnum):
    """LSB exit codes of ``aiodaemon status``."""

    RUNNING = 0
    DEAD = 1
    NOT_RUNNING = 3
    UNKNOWN = 4


def _show(message: str) -> None:
    write_line(printable(message))


def status(
    path: StrPath,
    control: StrPath | None,
    *,
    as_json: bool,
    timeout: float,
    owner: int | None = None,
) -> int:
    """Print what the daemon of ``path`` is doing and return its LSB status code.

    Asks the control socket when there is one, else reads the pidfile alone.
    ``owner`` is the daemon's uid when the caller said (``--user``).
    """
    untrusted = untrusted_pidfile(path, owner)
    if untrusted is not None:
        say(untrusted)
        return _report(StatusCode.UNKNOWN, "unknown", None, f"unknown ({untrusted})", as_json)

    def reread() -> PidfileState:
        # Each time: after a dropped connection too (a daemon killed as we asked).
        return _uncontested(path, read_pidfile(path), min(timeout, _CONTESTED_PATIENCE))

    state = reread()
    if names_no_pid(state):
        code = _status_without_pid(path, control, state, as_json, timeout, owner)
        if code is not None:
            return code
        state = read_pidfile(path)
    elif (code := _status_replaced(path, control, state, as_json, timeout, owner)) is not None:
        return code
    pid = state.running_pid
    absent = False
    if pid is not None and control is not None and (held := suspension(pid)) is not None:
        # SIGSTOP or a frozen cgroup: /proc tells at once, and asking would only
        # wait all of --timeout and leave one more connection in its backlog (a
        # full one read as "busy", status from the pidfile: "running").
        code = _report_suspended(path, pid, held, as_json)
        if code is not None:
            return code
        control = None  # suspended in its shutdown: the pidfile tells, without a wait
    if pid is not None and control is not None:
        try:
            answer = _ask_status(control, path, pid, timeout)
            _check_status(answer)
        except ControlBusy as exc:
            # Every control slot taken (slow reloads, hung clients): the daemon
            # runs and holds its lock all the same, which the pidfile tells.
            say(f"warning: control socket {control} stayed {exc}; status from the pidfile")
        except ControlNoAnswer as exc:
            # Out of descriptors (the socket accepts and drops) or ending now:
            # whether it still holds its lock, the pidfile tells.
            say(f"warning: {exc}; status from the pidfile")
        except ControlAbsent:
            # No control socket: the pidfile still tells whether the daemon runs.
            absent = True
        except (ControlRefused, ControlDenied):
            # Not served yet, or not ours to use (another user asking): as above.
            pass
        except ControlVersionMismatch as exc:
            # Another aiodaemon's daemon (started before the package changed):
            # its lock, which needs no protocol, says it runs.
            say(f"note: {exc}; status from the pidfile")
        except ControlUntrusted as exc:
            # Not the daemon's socket (one planted beside a daemon run without
            # its own): the daemon has none, and its pidfile tells the truth.
            say_ignored(exc, "status from the pidfile")
        except ControlError as exc:
            why = str(exc)
            if isinstance(exc, ControlTimeout) and (held := suspension(pid)) is not None:
                # SIGSTOP or a frozen cgroup, not a loop held up: it answers once run again.
                why += f": it is {held.state}"
            if not (isinstance(exc, ControlTimeout) and says_stopping(pid)):
                say(why)
                return _report(StatusCode.UNKNOWN, "unknown", pid, f"unknown ({why})", as_json)
            # Its loop held up in its shutdown (sync code in a hook or a task it
            # cancels): the stopping mark, which needs no loop, says what it does.
            say(f"warning: {why}; status from the pidfile")
        else:
            return _report_answer(answer, path, as_json)
        # Whatever failed, the pidfile tells: read again, as a daemon killed since
        # the first reading refuses or drops the connection too.
        state = reread()
        pid = state.running_pid
    if state.status is PidfileStatus.RUNNING:
        if pid is None:
            # Locked, empty, no control socket answering, and no single holder
            # found: a moment ago a pid could still come; now nobody can tell.
            line = f"unknown (pidfile {path} is locked but holds no pid, and its holder is unknown)"
            return _report(StatusCode.UNKNOWN, "unknown", None, line, as_json)
        # Past its control socket's close (the log drain, the release), or with
        # none: the daemon's stopping mark tells a stop from a run.
        word = "stopping" if says_stopping(pid) else "running"
        line = f"{word} (pid {pid}, pidfile {path})"
        if absent and os.fspath(control or "") == f"{os.fspath(path)}.ctl":
            # The default path: a daemon started with --control serves it
            # elsewhere, which would tell its state, addresses and last reload
            # (unless the daemon is 0.1.0's, which serves none: the hint says which).
            say(
                f"note: no control socket served at {control}, so only the pidfile tells"
                f" {no_control_hint(pid)}"
            )
        return _report(StatusCode.RUNNING, word, pid, line, as_json, uptime=_uptime(pid))
    emptied = state.status is PidfileStatus.DEAD and state.pid is None and not state.unparsable
    if state.status is PidfileStatus.ABSENT or emptied:
        code = _status_exiting(path, owner, as_json, emptied=emptied)
        if code is not None:
            return code
    if state.status is PidfileStatus.ABSENT:
        return _report(StatusCode.NOT_RUNNING, "stopped", None,
                       f"not running (no pidfile {path})", as_json)  # fmt: skip
    if state.status is PidfileStatus.DEAD and not state.unparsable:
        if state.pid is None:
            # An empty unlocked file is what a daemon leaves when it may not unlink.
            line = f"not running (empty pidfile {path})"
            return _report(StatusCode.NOT_RUNNING, "stopped", None, line, as_json)
        unheld = f"which does not hold it{_unreaped(state.pid)}"
        line = f"dead (pidfile {path} names pid {state.pid}, {unheld})"
        return _report(StatusCode.DEAD, "dead", state.pid, line, as_json)
    # Unreadable, unverifiable, or bytes that are not a pid: LSB's "unknown",
    # never "not running" (a file we cannot read may well be a live daemon's).
    line = f"unknown ({state.detail})"
    return _report(StatusCode.UNKNOWN, "unknown", state.pid, line, as_json)


def _report_suspended(path: StrPath, pid: int, held: Suspension, as_json: bool) -> int | None:
    """``unknown`` for a suspended daemon, at once; None for one stopping (the pidfile tells)."""
    why = f"pid {pid} is {held.state}"
    if says_stopping(pid):
        # Suspended in its shutdown: its stopping mark, which needs no loop, tells.
        say(f"warning: {why}; status from the pidfile")
        return None
    return _unknown_while_suspended(why, pid, held, as_json)


def _unknown_while_suspended(why: str, pid: int, held: Suspension, as_json: bool) -> int:
    """``unknown`` for the suspended daemon ``pid`` (``why``: what is known of it)."""
    _say_for_json(why, as_json)
    line = f"unknown ({why}; it answers once {held.until})"
    return _report(StatusCode.UNKNOWN, "unknown", pid, line, as_json)


def _say_for_json(why: str, as_json: bool) -> None:
    """Say on stderr why the status is unknown, when stdout is JSON that cannot.

    The plain line on stdout says it already: said twice, it read as two problems.
    """
    if as_json:
        say(why)


def _report_lost_suspended(
    path: StrPath,
    control: StrPath | None,
    state: PidfileState,
    exc: ControlSuspended,
    as_json: bool,
) -> int:
    """As :func:`_report_suspended`, for a daemon found on ``control`` without its pidfile."""
    pid, held = exc.pid, exc.held
    why = f"{why_no_pid(path, state)}; pid {pid}, serving {control}, is {held.state}"
    if says_stopping(pid):
        # Suspended in its shutdown: its stopping mark, which needs no loop, tells.
        say(f"warning: {why}")
        line = f"stopping (pid {pid}, serving {control})"
        return _report(StatusCode.RUNNING, "stopping", pid, line, as_json, uptime=_uptime(pid))
    return _unknown_while_suspended(why, pid, held, as_json)


def _unreaped(pid: int) -> str:
    """``: it exited, ...`` when ``pid`` is a zombie its parent has not reaped yet; else "".

    A daemon killed (SIGKILL, the OOM killer) under a parent that waits late
    (``aiodaemon run`` under a supervisor) stays in the process table:
    ``ps`` lists it, and it is no less dead (LSB 1). Said, so nobody takes
    it for a daemon that ignores its stop. Its lock and its descriptors went
    with its exit; only the pid and the exit status wait for the parent.
    """
    if not is_zombie(pid):
        return ""
    parent = stat_field(pid, 1)
    who = "its parent" if parent is None else f"its parent (pid {parent})"
    return f": it exited, and {who} has not reaped it yet"


def _status_exiting(
    path: StrPath, owner: int | None, as_json: bool, *, emptied: bool
) -> int | None:
    """Status of a daemon in its last steps, its pidfile already removed or emptied; None if none.

    From just before it removes the file until its process ends (see
    :mod:`._exiting`), believed as ``stop`` believes it: it is stopping, as
    ``stop`` waits for it, not "not running" (3).
    """
    from ._exiting import open_exiting  # only when no daemon holds the pidfile

    found = open_exiting(path, owner)
    if found is None:
        return None
    pid, pidfd = found
    os.close(pidfd)
    how = "emptied" if emptied else "removed"
    line = f"stopping (pid {pid}, pidfile {path} {how} as it exits)"
    return _report(StatusCode.RUNNING, "stopping", pid, line, as_json, uptime=_uptime(pid))


def _uncontested(path: StrPath, state: PidfileState, patience: float) -> PidfileState:
    """The pidfile read again until no stranger holds its lock, for ``patience`` s at most.

    A ``stop`` removing a stale pidfile holds its lock for a moment: read
    then, it said "unknown" (4) of a daemon that is dead (1) and a moment
    later not running (3). So does a daemon killed (SIGKILL, the OOM killer)
    while it was asked: the kernel lets go of its lock only after its
    descriptor table, and a ``start`` or a ``stop`` may take it then.
    """
    deadline = time.monotonic() + patience
    while state.contested and time.monotonic() < deadline:
        time.sleep(_CONTESTED_PAUSE)
        state = read_pidfile(path)
    return state


def _ask_status(control: StrPath, path: StrPath, pid: int, timeout: float) -> dict[str, Any]:
    """The holder's status answer, asked again while it says "busy" (see ``BUSY_PATIENCE``).

    Raises:
        ControlBusy: still busy at the end of the patience.
        ControlError: as :func:`._control_trust.ask_holder`.
    """
    request = {"v": VERSION, "cmd": "status"}
    deadline = time.monotonic() + timeout

    def ask_once() -> dict[str, Any]:
        left = max(0.001, deadline - time.monotonic())
        return ask_holder(control, request, holder=pid, timeout=left, follow=path, said=timeout)[0]

    return ask_patiently(ask_once, until=time.monotonic() + min(timeout, BUSY_PATIENCE))


def _status_without_pid(
    path: StrPath,
    control: StrPath | None,
    state: PidfileState,
    as_json: bool,
    timeout: float,
    owner: int | None,
) -> int | None:
    """Status of a daemon whose pidfile is missing or emptied, found anyway; None if none is.

    A daemon running on is reported as running (0, LSB), with a warning that
    its pidfile names no pid. A locked, empty pidfile is given the moment a
    starting daemon takes to write its pid before its lock's holder is looked for.
    """
    found = served = None
    if control is not None:
        try:
            found = served = find_through_control(path, control, owner=owner, timeout=timeout)
            if found is not None and found.answer is not None:
                _check_status(found.answer)
        except ControlUntrusted as exc:
            say_ignored(exc, "status from the pidfile")
        except ControlSuspended as exc:
            return _report_lost_suspended(path, control, state, exc, as_json)
        except ControlError as exc:
            say(str(exc))
            line = f"unknown ({why_no_pid(path, state)}; {exc})"
            return _report(StatusCode.UNKNOWN, "unknown", None, line, as_json)
    # Not for one overwritten (bytes that are not a pid): its lock's holder may
    # be another program whose lock file it is; only its control socket tells.
    if found is None and state.status is PidfileStatus.RUNNING:
        if wait_for_pid(path).pid is not None:
            return None  # it was starting: read the pidfile again
        pid = find_lock_holder(path)
        found = None if pid is None else Found(pid, None)
    if found is None or reappeared(path, found.pid):
        return None  # nothing found, or a start that raced ours wrote the pid meanwhile
    return _report_found(path, control, state, found, as_json, served=found is served)


def _status_replaced(
    path: StrPath,
    control: StrPath | None,
    state: PidfileState,
    as_json: bool,
    timeout: float,
    owner: int | None,
) -> int | None:
    """Status of a daemon whose pidfile was replaced by a copy, found anyway; None if none is.

    Found as :func:`._lost_pidfile.find_replaced` finds it. One that gives no
    proper answer (suspended, its loop held up) is ``unknown``, as with a
    removed pidfile: the pid the copy names still has the replaced file
    open, so it is no dead daemon (it was said to be, exit 1).
    """
    try:
        found = find_replaced(path, state, control, owner=owner, timeout=timeout, raising=True)
    except ControlSuspended as exc:
        return _report_lost_suspended(path, control, state, exc, as_json)
    except ControlError as exc:
        say(str(exc))
        line = f"unknown ({why_no_pid(path, state)}; {exc})"
        return _report(StatusCode.UNKNOWN, "unknown", state.pid, line, as_json)
    if found is None:
        return None
    return _report_found(path, control, state, found, as_json, served=True)


def _report_found(
    path: StrPath,
    control: StrPath | None,
    state: PidfileState,
    found: Found,
    as_json: bool,
    *,
    served: bool,
) -> int:
    """Report the daemon found though its pidfile names no pid (``served``: on ``control``)."""
    how = f"serves {control}" if served else "holds its lock"
    if served and found.answer is None:
        how += ", which stayed busy"
    say(f"warning: {why_no_pid(path, state)}, but pid {found.pid} runs on and {how}")
    if found.answer is not None:
        return _report_answer(found.answer, path, as_json)
    line = f"running (pid {found.pid}, holding the lock of pidfile {path})"
    if served:
        line = f"running (pid {found.pid}, serving {control})"
    uptime = _uptime(found.pid)
    return _report(StatusCode.RUNNING, "running", found.pid, line, as_json, uptime=uptime)


def _check_status(answer: dict[str, Any]) -> None:
    """Refuse an answer that does not have the shape ``status`` promises.

    Raises:
        ControlError: naming what is wrong.
    """
    if not answer.get("ok"):
        raise ControlError(f"the daemon refused status: {answer.get('error')}")
    state, pid, uptime = answer.get("state"), answer.get("pid"), answer.get("uptime")
    sockets, last = answer.get("sockets"), answer.get("last_reload")
    if (
        not isinstance(state, str)
        # bool is an int: "pid": true would be printed as the daemon's pid.
        or type(pid) is not int
        or type(uptime) not in (int, float)
        or not isinstance(sockets, dict)
        or not all(isinstance(v, str) for v in sockets.values())
        or not (last is None or _is_reload_result(last))
    ):
        raise ControlError("unreadable status answer from the daemon")


def _is_reload_result(last: object) -> bool:
    """Whether ``last`` is ``{"ok": bool, "error": str|null, "at": str}`` (more keys may come)."""
    if not isinstance(last, dict):
        return False
    error = last.get("error")
    return (
        isinstance(last.get("ok"), bool)
        and (error is None or isinstance(error, str))
        and isinstance(last.get("at"), str)
    )


def _report_answer(answer: dict[str, Any], path: StrPath, as_json: bool) -> int:
    keys = ("state", "pid", "uptime", "sockets", "last_reload", "version")
    successor = answer.get("successor")
    if type(successor) is not int:
        successor = None  # none under way, or a daemon before 0.2 that does not say
    if as_json:
        # Exactly DESIGN's keys: the successor is the plain line's alone.
        write_line(json.dumps({key: answer.get(key) for key in keys}))
        return StatusCode.RUNNING
    # During an upgrade, as `reload` and `upgrade` say it then.
    upgrading = "" if successor is None else f"; upgrading to successor pid {successor}"
    lines = [f"{answer['state']} (pid {answer['pid']}, pidfile {path}{upgrading})"]
    lines.append(f"uptime: {_duration(answer['uptime'])}")
    hook = answer.get("hook")
    if (
        isinstance(hook, dict)
        and isinstance(hook.get("name"), str)
        and type(hook.get("seconds")) in (int, float)
    ):
        # What a daemon "starting", "reloading" or "stopping" for long waits on.
        lines.append(f"waiting on {hook['name']} for {_duration(hook['seconds'])}")
    lines.extend(f"listening {name}: {address}" for name, address in answer["sockets"].items())
    last = answer["last_reload"]
    if last is None:
        lines.append("last reload: none")
    elif last.get("ok"):
        lines.append(f"last reload: ok at {last.get('at')}")
    else:
        hook = answer.get("last_reload_hook")
        where = f" in reload hook {hook}" if isinstance(hook, str) and hook else ""
        lines.append(f"last reload: failed at {last.get('at')}{where}: {last.get('error')}")
    lines.append(f"aiodaemon {answer.get('version')}")
    for line in lines:
        _show(line)
    return StatusCode.RUNNING


def _report(
    code: int, state: str, pid: int | None, line: str, as_json: bool, uptime: float | None = None
) -> int:
    """Print a status known from the pidfile alone (no control socket)."""
    if as_json:
        # Same keys as a daemon's answer; null where only the daemon could tell.
        fields = {"state": state, "pid": pid, "uptime": uptime, "sockets": None,
                  "last_reload": None, "version": None}  # fmt: skip
        write_line(json.dumps(fields))
    else:
        _show(line)
    return code


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {text}" if days else text


def _uptime(pid: int) -> float | None:
    """Seconds since ``pid`` started, from /proc; None when it will not tell."""
    started = stat_field(pid, 19)
    if started is None:
        return None
    try:
        with open("/proc/uptime", "rb") as f:
            now = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(max(0.0, now - started / os.sysconf("SC_CLK_TCK")), 3)
