"""``aiodaemon stop``: ask the daemon to stop, wait, SIGKILL at the deadline, clean up after.

A daemon that already stops must be left to finish: a second SIGTERM means
"exit at once" (hooks cut, records lost, files left). So when the daemon's
control socket answers, ``stop`` asks over it: the ``stop`` command begins the
graceful shutdown SIGTERM begins, and a daemon already stopping just goes on,
however many ``stop`` ask at once. Without a control socket (or one that will
not answer) it falls back to SIGTERM. Synchronous and light, for the CLI.
"""

from __future__ import annotations

import enum
import os
import time

from .._prefork._control_protocol import VERSION, ProtocolError, decode
from .._prefork._kill import Killed, kill_daemon
from .._prefork._messages import seconds_shown
from .._prefork._pidfile_status import PidfileStatus, read_pidfile, says_stopping
from .._prefork._procfs import is_suspended, suspension, uids
from .._prefork._readiness import wait_exited
from .._prefork._resume import continue_stopped
from ._control import ControlCode, _holder, _say, _send
from ._control_client import (
    ControlAbsent,
    ControlDenied,
    ControlError,
    ControlMismatch,
    ControlTimeout,
    ControlVersionMismatch,
    KeptConnection,
    ask,
    ask_patiently,
)
from ._control_trust import HANDOVER_GRACE, ControlUntrusted, related, say_ignored
from ._stale import StaleRemoval, remove_stale, remove_stale_control
from ._stop_claim import claim_stop, watch_stop
from ._taken_over import lock_taker, taken_over

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["stop", "stopping_unwaited"]

#: How long to wait for the process to vanish after SIGKILL.
_KILL_WAIT = 10.0
#: Seconds ``stop`` waits before SIGKILL unless told (or the daemon's budget is longer).
DEFAULT_TIMEOUT = 30.0
#: Added to a daemon's stop budget: time to see its exit.
_BUDGET_MARGIN = 1.0
#: How long a control socket that refuses or drops connections is retried: a
#: daemon not serving it yet, or closing it at the very end of its shutdown.
_RETRY_GRACE = 2.0
#: Pause between those tries (spent waiting for the daemon's exit).
_RETRY_PAUSE = 0.05
#: Longest wait for the daemon's answer; it answers at once unless its loop is stuck.
_ANSWER_TIMEOUT = 5.0
#: Longest read of how the daemon ended, once it is gone (its end is closed by then).
_TOLD_WAIT = 1.0
#: The daemon this command asked or signalled to stop (or found stopping) and
#: waits for: a Ctrl-C then ends the wait, not its stop (see stopping_unwaited).
_waiting_for: list[int] = []
#: the stop request's connection while it is asked: a Ctrl-C between the
#: request's sending and its answer (which the daemon, stopping by then, may
#: be slow to write) still tells that the daemon goes on stopping.
_asking: list[KeptConnection] = []


class _Asked(enum.Enum):
    STOPPING = "stopping"  # the daemon began its shutdown at our request
    ALREADY = "already"  # it was stopping already
    GONE = "gone"  # it exited while we asked
    SIGNAL = "signal"  # no usable control socket: SIGTERM it
    HANDED = "handed"  # an upgrade's new process took the pidfile over meanwhile


def stop(
    path: StrPath,
    timeout: float | None,
    control: StrPath | None = None,
    *,
    owner: int | None = None,
) -> int:
    """Stop the daemon holding ``path``, waiting ``timeout`` seconds before SIGKILL.

    Args:
        path: the pidfile.
        timeout: seconds from the request to SIGKILL; None: :data:`DEFAULT_TIMEOUT`,
            or the daemon's own stop budget when it says its stop takes longer.
        control: the daemon's control socket; None: signals only.
        owner: the daemon's uid, when the caller said (``--user``).

    Returns:
        0 once the daemon is gone or when it was not running; 1 when it cannot
        be told apart from a stranger or would not die; 4 when not allowed.
    """
    import signal  # here: `status` never signals, and the import costs it ~0.5 ms

    # Seen before the holder is verified: a socket gone by the time we ask was
    # removed by the daemon at the very end of its exit, not never there.
    had_socket = control is not None and os.path.lexists(control)
    # Whose lock the daemon holds: an upgrade's new process inherits it, a
    # daemon started since (a `start` racing us) holds another. Read before
    # the holder is verified, so that it is the verified holder's lock (or an
    # older one, which follows nothing): read after, a hand-over done in
    # between left nothing to follow, and the new process serving on.
    # None: no hand-over to follow (a pidfile removed or emptied is never upgraded).
    taker = lock_taker(path)
    holder = _holder(
        path,
        not_running=ControlCode.OK,
        remove_stale=True,
        control=control,
        owner=owner,
        # A daemon found over its socket, its pidfile removed, that does not answer
        # (its loop held up) is signalled within --timeout too, not after 5 s.
        find_timeout=timeout,
        exiting=lambda pid, pidfd: _wait_exiting(path, pid, pidfd, timeout, control),
    )
    if isinstance(holder, int):
        return holder
    pid, pidfd = holder
    # Whose its socket files may be (read while it lives): see remove_stale.
    daemon_uid = None if (ids := uids(pid)) is None else ids[1]
    # Nobody holds the pidfile of the daemon found: a copy moved over its own
    # (see find_replaced), which it leaves at its exit as no file of its.
    replaced = read_pidfile(path).status is PidfileStatus.DEAD

    def handed_to() -> int | None:
        return None if taker is None else taken_over(path, pid, taker=taker)

    note = ""
    # How it ended when killed (see _killed), and the exit status that goes with it.
    ended, code = f"stopped (pid {pid})", int(ControlCode.OK)
    claim = None
    # Where a stop that only waits hears the exit (see _stop_claim.watch_stop).
    watch = None
    successor: int | None = None
    undone = False
    # The stop request's connection, kept: the daemon says on it how it ended.
    kept = KeptConnection()
    _asking[:] = [kept]
    try:
        asked, budget, watched = _Asked.SIGNAL, None, False
        sockets: dict[str, tuple[int, int]] = {}
        wait = DEFAULT_TIMEOUT if timeout is None else timeout
        if control is not None:

            def handed() -> bool:
                return handed_to() is not None

            if is_suspended(pid):
                # Else the request would wait its 5 s for an answer first.
                _continue(pid, pidfd, quiet=True)
            if says_stopping(pid):
                # Stopping already: sync code may hold its loop up past its end,
                # our request unanswered, so we listen before we ask.
                watch = watch_stop(pid)
            asked, budget, sockets, watched = _ask(
                control, pid, pidfd, wait, had_socket=had_socket, handed=handed, keep=kept
            )
            _asking.clear()  # answered: _waiting_for says from here on
        if asked is _Asked.HANDED:
            # It handed over and stops on its own: its new process is the daemon now.
            successor = handed_to()
            # Unless the hand-over was undone since (the new process died, the
            # old one rolled back): our request reached neither; ask again.
            undone = successor is None
        else:
            if timeout is None and budget is not None:
                # Its configured drain and shutdown are the daemon's to use up: a
                # default SIGKILL at 30 s would cut a 60 s shutdown_timeout short.
                wait = max(wait, budget + _BUDGET_MARGIN)
            # Asked, or found stopping: from here on it stops whatever we do
            # (set before any line saying we wait, which a Ctrl-C may follow).
            _waiting_for[:] = [pid]
            if asked is _Asked.SIGNAL:
                # Another `stop` signalling at the same time would force the exit.
                claim = claim_stop(pid)
                if isinstance(claim, int):
                    # The claim is that stop's: the exit is told to us on a watch.
                    watch = watch or watch_stop(pid)
                    by = f"`aiodaemon stop` pid {claim} sent SIGTERM"
                    _say(f"already stopping (pid {pid}; {by}); waiting")
                elif says_stopping(pid):
                    # Stopping already (a `kill -TERM`, or its control socket
                    # closed at the end): a SIGTERM now would force its exit.
                    _say(f"already stopping (pid {pid}); waiting")
                elif not _send(pidfd, pid, signal.SIGTERM):
                    _waiting_for.clear()  # not signalled after all
                    return ControlCode.NO_PERMISSION
            elif asked is _Asked.ALREADY:
                if not watched:
                    # Unanswered (its loop held up, its control socket closed at
                    # the end) or not watched: told on a watch, as the first stop is.
                    watch = watch or watch_stop(pid)
                _say(f"already stopping (pid {pid}); waiting")
            if is_suspended(pid) is not False:
                # Also when /proc hides its state (hidepid=2, none mounted): a
                # running process takes no notice of SIGCONT.
                _continue(pid, pidfd)
            how = "SIGTERM" if asked is _Asked.SIGNAL else "the stop request"
            frozen = _frozen(pid)
            if frozen is not None:
                # No SIGCONT thaws it: the SIGTERM or the request waits for the thaw,
                # which someone else may do meanwhile (it then stops as any daemon).
                _say(f"pid {pid} is {frozen}; it stops once thawed; waiting {seconds_shown(wait)}s")
            # What is left to remove: a killed daemon had no chance to remove its
            # pidfile or its socket; one that dropped privileges may not unlink in
            # a root-owned directory, so it emptied its pidfile and left its socket.
            left = "which the daemon could not remove"
            if replaced:
                left = "a copy moved over the daemon's own"
            exited = wait_exited(pidfd, wait)
            _waiting_for.clear()  # a Ctrl-C from here on interrupts only our own end
            if not exited and (still := _frozen(pid)) is not None:
                # Frozen (still, or since): a SIGKILL would cut the shutdown it runs
                # once thawed (cgroup v2) or wait for the thaw as well (v1), its
                # pidfile, socket files and last records lost either way.
                after = f"{seconds_shown(wait)}s after {how}"
                what = "still frozen" if frozen is not None else f"{still},"
                _say(f"pid {pid} {what} {after}; not killed: it stops once thawed")
                return ControlCode.FAILURE
            if not exited:
                after = f"{seconds_shown(wait)}s after {how}"
                _say(f"pid {pid} still running {after}; sending SIGKILL")
                try:
                    killed = kill_daemon(pidfd, pid, _KILL_WAIT)
                except PermissionError:
                    _say(f"not allowed to send SIGKILL to pid {pid}: run as its user or as root")
                    return ControlCode.NO_PERMISSION
                if not killed.exited:
                    _say(f"pid {pid} did not exit after SIGKILL")
                    return ControlCode.FAILURE
                ended, code = _killed(pid, killed, after)
                if not replaced:
                    left = "which the killed daemon left"
            else:
                told = kept.read_to_end(_TOLD_WAIT)
                if not told and claim is not None and not isinstance(claim, int):
                    # Signalled (no control socket): it told our claim instead.
                    told = claim.told(pid, _TOLD_WAIT)
                if not told and watch is not None:
                    told = watch.told(pid, _TOLD_WAIT)
                note += _how_it_ended(told)
            successor = handed_to()
            if successor is None:
                removed = remove_stale(
                    path, pid, control=control, sockets=sockets, owner=daemon_uid
                )
                note += _removed(removed, path, control, left)
                # The daemon removed its pidfile but served no control socket
                # (0.1.0 has none): the file there is an earlier one's leftover.
                leftover = had_socket and asked is _Asked.SIGNAL and not removed.pidfile
                if (
                    control is not None
                    and leftover
                    and remove_stale_control(control, path, daemon_uid)
                ):
                    note += f"; removed control socket {control}, which nobody served"
    finally:
        os.close(pidfd)
        kept.close()
        if claim is not None and not isinstance(claim, int):
            claim.close()
        if watch is not None:
            watch.close()
    if successor is not None:
        # Our look at the pidfile came before an upgrade's hand-over, our
        # request after it: the new process serves on, and is stopped too.
        _say(f"pid {pid} handed over to pid {successor} (an upgrade) meanwhile; stopping it")
        return stop(path, timeout, control, owner=owner)
    if undone:
        return stop(path, timeout, control, owner=owner)
    _say(f"{ended}{note}")
    return code


def _continue(pid: int, pidfd: int, *, quiet: bool = False) -> None:
    """SIGCONT a daemon stopped with SIGSTOP (job control), so its stop is graceful.

    Stopped, it would take the stop request or SIGTERM only once it runs again,
    and only the SIGKILL at the deadline would reach it, cutting its shutdown:
    continued, as systemd continues what it sends its KillSignal= to. Its own
    group too (a detached daemon's: `kill -STOP -- -PGID`, a Ctrl-Z's): a
    worker its shutdown hook waits for would hold the stop up to the SIGKILL.
    ``quiet``: a refusal is not said (the SIGTERM that follows says it, once).
    """
    import signal  # loaded by stop() already (see there)

    continue_stopped(pid, pidfd, group_only=not quiet)
    if not quiet:
        _send(pidfd, pid, signal.SIGCONT)


def _killed(pid: int, killed: Killed, after: str) -> tuple[str, int]:
    """What the stop says of a daemon it killed (``after``: when), and its exit status.

    1 when a process of its group outlived the SIGKILL (stuck in the kernel,
    frozen): it may still hold the daemon's ports.
    """
    words = f"killed (pid {pid}){killed.took()} {after}"
    if killed.left():
        # Not its own group: a supervisor's or a script's, which may hold others.
        words += (
            f"; {killed.left()} left running: not in a process group of its own,"
            " they were not killed with it"
        )
    if not killed.stuck():
        return words, ControlCode.OK
    return f"{words}; {killed.stuck()} still running after SIGKILL", ControlCode.FAILURE


def _frozen(pid: int) -> str | None:
    """``pid``'s suspension in words when it is a frozen cgroup's (see ``_procfs.suspension``)."""
    held = suspension(pid)
    return held.state if held is not None and held.frozen else None


def _wait_exiting(
    path: StrPath, pid: int, pidfd: int, timeout: float | None, control: StrPath | None
) -> int:
    """Wait for a daemon in its last steps, its pidfile gone or emptied (see ``_exiting``).

    It stops already: only its exit is waited for, and nothing is sent. Past
    ``timeout`` it is not killed either: its own exit is bounded by its stop
    budget, and what goes on longer may be the program's work after ``run()``
    (found just before the daemon withdrew its mark for it).
    """
    try:
        _say(f"already stopping (pid {pid}, its pidfile {path} gone as it exits); waiting")
        wait = DEFAULT_TIMEOUT if timeout is None else timeout
        if not wait_exited(pidfd, wait):
            waited = seconds_shown(wait)
            _say(f"pid {pid} still runs {waited}s after its pidfile was gone; not signalled")
            return ControlCode.FAILURE
    finally:
        os.close(pidfd)
    # An emptied pidfile (and its socket), which the daemon could not remove: as for any stop.
    removed = remove_stale(path, pid, control=control)
    note = _removed(removed, path, control, "which the daemon could not remove")
    _say(f"stopped (pid {pid}){note}")
    return ControlCode.OK


def _removed(removed: StaleRemoval, path: StrPath, control: StrPath | None, left: str) -> str:
    """What the stop says it removed once the daemon was gone (``left``: whose leftovers)."""
    if not removed.pidfile:
        return ""
    files = [f"pidfile {path}"]
    if removed.control:
        files.append(f"control socket {control}")
    files += [f"socket file {socket}" for socket in removed.sockets]
    return f"; removed {_listed(files)}, {left}"


def _how_it_ended(data: bytes) -> str:
    """What the daemon said of its end (``data``, the lines it wrote): "" for a graceful one.

    On the kept stop connection, or on the SIGTERM's claim. An older daemon
    says nothing; of several lines (the graceful end, then a forced one), the
    last is how it ended. Read once the process is gone, its end closed.
    """
    told: dict[str, Any] | None = None
    for line in data.split(b"\n")[:-1]:
        try:
            message = decode(line)
        except ProtocolError:
            continue
        status = message.get("exit")
        # A status the kernel can give: the daemon's account writes this line.
        if type(status) is int and 0 <= status <= 255:
            told = message
    if told is None or told["exit"] == 0:
        return ""
    reason = told.get("reason")
    why = f": {' '.join(reason.split())}" if isinstance(reason, str) and reason else ""
    return f"; it exited with status {told['exit']}{why}"


def _listed(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if items[1:] else items)


def _ask(
    control: StrPath,
    pid: int,
    pidfd: int,
    timeout: float,
    *,
    had_socket: bool,
    handed: Callable[[], bool],
    keep: KeptConnection,
) -> tuple[_Asked, float | None, dict[str, tuple[int, int]], bool]:
    """Send ``stop`` over the control socket: how it went, the daemon's stop budget, its files.

    SIGNAL when SIGTERM must do instead; the budget (seconds to its end at
    the latest) and the unix socket files it would remove at its exit only
    when the daemon said them; last, whether the daemon will tell ``keep``
    how it ended.
    """
    asked = _ask_once(control, pid, pidfd, timeout, had_socket=had_socket, handed=handed, keep=keep)
    if isinstance(asked, _Asked):
        return asked, None, {}, False
    budget = asked.get("exits_within")
    if isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0:
        budget = None
    kind = _Asked.ALREADY if asked.get("already_stopping") is True else _Asked.STOPPING
    watched = asked.get("watched") is True
    return kind, budget, _socket_files(asked.get("socket_files")), watched


def _socket_files(told: object) -> dict[str, tuple[int, int]]:
    """The daemon's unix socket files from its answer: path -> (st_dev, st_ino)."""
    files: dict[str, tuple[int, int]] = {}
    if not isinstance(told, dict):
        return files
    for path, inode in told.items():
        if (
            _is_path(path)
            and isinstance(inode, list)
            and len(inode) == 2
            and all(type(number) is int and number >= 0 for number in inode)
        ):
            files[path] = (inode[0], inode[1])
    return files


def _is_path(text: object) -> bool:
    """Whether ``text`` is an absolute path the file system can be asked about."""
    if not isinstance(text, str) or not text.startswith("/") or "\0" in text:
        return False
    try:
        os.fsencode(text)
    except UnicodeError:
        return False
    return True


def _ask_once(
    control: StrPath,
    pid: int,
    pidfd: int,
    timeout: float,
    *,
    had_socket: bool,
    handed: Callable[[], bool],
    keep: KeptConnection,
) -> _Asked | dict[str, Any]:
    """The daemon's ``ok`` answer to ``stop``, or how else it went.

    ``handed()``: whether an upgrade's new process took the pidfile over meanwhile.
    """
    # watch: the daemon tells this connection how it ended (see _how_it_ended).
    request = {"v": VERSION, "cmd": "stop", "watch": True}
    answer_timeout = min(_ANSWER_TIMEOUT, max(timeout, 1.0))
    deadline = time.monotonic() + _RETRY_GRACE
    # Longer: the old daemon gives its new process that long before it rolls back.
    handover_ends = time.monotonic() + min(HANDOVER_GRACE, timeout)
    while True:
        try:
            # "busy" (every control slot taken) is asked again within the same grace.
            answer = ask_patiently(
                lambda: ask(control, request, holder=pid, timeout=answer_timeout, keep=keep),
                until=deadline,
                wait=lambda seconds: wait_exited(pidfd, seconds),
            )
        except ControlAbsent:
            if had_socket:
                # Removed since we looked: the daemon is past its shutdown, on
                # its way out; a SIGTERM now would only force that exit.
                return _Asked.ALREADY
            return _Asked.SIGNAL  # run without a control socket: signals it is
        except ControlDenied:
            return _Asked.SIGNAL  # another user's daemon: SIGTERM says whether we may
        except ControlTimeout as exc:
            # A stuck loop: the holder still hears signals.
            if wait_exited(pidfd, 0):
                return _Asked.GONE
            if says_stopping(pid):
                # Stopping already (its loop held up, or out of descriptors to
                # take our connection): a SIGTERM now would force its exit.
                return _Asked.ALREADY
            _say(f"{exc}; sending SIGTERM")
            return _Asked.SIGNAL
        except ControlVersionMismatch as exc:
            # Another aiodaemon's daemon, refusing our request: it hears SIGTERM.
            _say(f"{exc}; sending SIGTERM")
            return _Asked.SIGNAL
        except ControlUntrusted as exc:
            # Not the daemon's socket (a planted one, or an upgrade handing
            # over): the holder still hears signals.
            if handed():
                return _Asked.HANDED  # the new process answered: ours to stop next
            if wait_exited(pidfd, 0):
                return _Asked.GONE
            if (
                isinstance(exc, ControlMismatch)
                and related(exc.peer, pid)
                and time.monotonic() < handover_ends
            ):
                # An upgrade handing over: the holder is its new process, which
                # wrote its pid and serves the socket a moment later (until then
                # its parent, the old daemon, does), or the old daemon, whose new
                # process gave the pidfile back and serves on until the old one
                # rolls back. A SIGTERM now would stop the new process before it
                # took over, or the old one mid-rollback: ask again.
                wait_exited(pidfd, _RETRY_PAUSE)
                continue
            say_ignored(exc, "sending SIGTERM")
            return _Asked.SIGNAL
        except ControlError as exc:
            # Not served yet, or closed at the very end of a shutdown: ask again
            # while the daemon lives (a stop is idempotent), SIGTERM at the end.
            if says_stopping(pid):
                return _Asked.ALREADY  # closed: what is left is its log drain and release
            if wait_exited(pidfd, _RETRY_PAUSE):
                return _Asked.GONE
            if time.monotonic() > deadline:
                _say(f"{exc}; sending SIGTERM")
                return _Asked.SIGNAL
            continue
        if answer.get("ok"):
            return answer
        # A daemon older than the `stop` command ("unknown command"): SIGTERM.
        return _Asked.SIGNAL


def stopping_unwaited() -> int | None:
    """The pid of the daemon a ``stop`` interrupted while waiting for it goes on stopping."""
    if _waiting_for:
        return _waiting_for[0]
    if _asking and _asking[0].sent_to is not None:
        return _asking[0].sent_to
    return None
