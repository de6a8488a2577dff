"""Find the daemon of a pidfile that names no pid: removed, emptied or replaced while it runs.

An operator's ``rm`` or a tmp cleaner removes the pidfile, ``: > app.pid``
empties it, or a copy is moved over it (an editor's save, ``sed -i``), and
the daemon runs on: it keeps its control socket and the lock on the (maybe
deleted) file it opened. Reporting "not running" then would be a lie
(and ``start`` would fail on the bound control socket), so the commands look
for the daemon in two places, trusting neither on sight:

- the control socket beside the pidfile. Anybody may have created the file
  in a shared directory, so it must be a socket whose owner could only have
  put it there (any owner in a directory only its owner may write; in a
  shared one root, us, the directory's owner or the daemon's ``--user``), it
  must be served by a process running as that owner (or root), holding the
  pidfile when there is one, and the answer must name that very process;
- for a locked, emptied pidfile, the one process whose open file holds the
  lock, found through ``/proc/PID/fdinfo`` (``/proc/locks`` names the process
  that took the lock: the launcher, gone since the fork).

Synchronous and light, for the CLI: no asyncio.
"""

from __future__ import annotations

import os
import stat
import time

from .._prefork._control_protocol import VERSION
from .._prefork._pidfile import has_file_open
from .._prefork._pidfile_status import PidfileState, PidfileStatus, read_pidfile
from .._prefork._procfs import Suspension, any_open_file, suspension
from .._prefork._sharedfile import is_open_to_all
from ._control_client import (
    BUSY_PATIENCE,
    NOTHING_THERE,
    ControlAbsent,
    ControlBusy,
    ControlError,
    ControlRefused,
    ControlTimeout,
    ControlUntrusted,
    ask_patiently,
    exchange,
    not_a_socket,
)

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = [
    "ControlSuspended",
    "Found",
    "find_lock_holder",
    "find_lost",
    "find_replaced",
    "find_through_control",
    "names_no_pid",
    "opened_from",
    "overwritten",
    "reappeared",
    "serving_without_pidfile",
    "wait_for_pid",
    "why_no_pid",
]

#: How long to wait for a pid to appear in a freshly locked pidfile.
_STARTING_GRACE = 5.0
#: Seconds ``start`` gives a control socket found without its pidfile to answer.
_ASK_TIMEOUT = 5.0


class ControlSuspended(ControlError):
    """The server passed every check, and is suspended: stopped by a signal, or frozen.

    It cannot answer before it runs again, so nobody waits for it.

    Attributes:
        pid: the server, found through its control socket.
        held: how it is suspended.
    """

    def __init__(self, pid: int, held: Suspension) -> None:
        super().__init__(f"pid {pid} is {held.state}")
        self.pid = pid
        self.held = held


class Found:
    """The daemon behind a pidfile that names no pid.

    Attributes:
        pid: its pid.
        answer: its answer to ``status`` (None when found through the lock alone).
    """

    __slots__ = ("answer", "pid")

    def __init__(self, pid: int, answer: dict[str, Any] | None) -> None:
        self.pid = pid
        self.answer = answer


def names_no_pid(state: PidfileState) -> bool:
    """Whether a reading is a missing pidfile, or a locked one holding no pid (empty or not)."""
    return (
        state.status is PidfileStatus.ABSENT
        or (state.status is PidfileStatus.RUNNING and state.pid is None)
        or overwritten(state)
    )


def overwritten(state: PidfileState) -> bool:
    """Whether a reading is a locked pidfile holding bytes that are not a pid.

    Overwritten in place (``printf ... 1<> app.pid``, an editor that keeps the
    inode): its daemon runs on, holding the lock, and is looked for as for an
    emptied one, never believed on the file's word.
    """
    return state.status is PidfileStatus.UNKNOWN and state.unparsable


def reappeared(path: StrPath, pid: int) -> bool:
    """Whether ``path`` names ``pid`` now, after it was read as naming no pid.

    A daemon found serving its control socket a moment after its pidfile was
    read as missing is, more often than not, one whose start raced ours: it
    created the pidfile in between. Saying that the pidfile "was removed"
    would send the operator looking for who removed it.
    """
    return read_pidfile(path).running_pid == pid


def why_no_pid(path: StrPath, state: PidfileState) -> str:
    """How the pidfile's state is told beside the daemon found anyway."""
    if state.status is PidfileStatus.ABSENT:
        return f"pidfile {path} was removed"
    if state.status is PidfileStatus.DEAD:
        return f"pidfile {path} was replaced (nobody holds its lock)"
    if state.unparsable:
        return state.detail  # "pidfile P holds no pid but unparsable data: '...'"
    return f"pidfile {path} holds no pid (emptied?)"


def find_replaced(
    path: StrPath,
    state: PidfileState,
    control: StrPath | None,
    *,
    owner: int | None,
    timeout: float,
    unanswered: bool = False,
    raising: bool = False,
) -> Found | None:
    """The daemon still serving ``control`` though nobody holds its pidfile ``path``: replaced.

    A copy moved over the pidfile is a new file nobody locks, read as a dead
    daemon's; the daemon runs on with the file it opened, deleted since, as
    after an ``rm``. Looked for only when the pid the file names has a file
    opened at ``path`` open (its own, replaced since): a killed daemon's
    file, or one naming any other process, is not even asked about, as no
    socket without a lock holder is. Only that pid, serving a socket that
    passes every check of :func:`find_through_control`, counts: anything
    else leaves the pidfile's verdict, unsaid. ``unanswered``: as there.

    Raises:
        ControlError: with ``raising``, not a :class:`ControlUntrusted`: that
            pid's socket gave no proper answer (``status`` says unknown; it
            is no dead daemon). Without it, None.
    """
    pid = state.pid
    if (
        state.status is not PidfileStatus.DEAD
        or pid is None
        or control is None
        or opened_from(pid, path) is not True
    ):
        return None
    try:
        found = find_through_control(
            path, control, owner=owner, timeout=timeout, unanswered=unanswered
        )
    except ControlUntrusted:
        return None  # not to be believed: the pidfile tells, silently
    except ControlError:
        if raising:
            raise
        return None
    if found is None or found.pid != pid or reappeared(path, pid):
        return None
    return found


def find_lost(
    path: StrPath, state: PidfileState, control: StrPath, *, owner: int | None, timeout: float
) -> Found | None:
    """The daemon serving ``control`` whose pidfile ``path`` was removed, replaced or overwritten.

    ``state``: the pidfile's reading; absent, the daemon is looked for over
    ``control`` (see :func:`find_through_control`), held by nobody as
    :func:`find_replaced` says. None when nothing is found or believed, or the
    pidfile is neither. A daemon that passes every check but does not answer
    (suspended, or its loop held up) is found, with no answer: it runs.
    """
    if state.status is PidfileStatus.DEAD:
        return find_replaced(path, state, control, owner=owner, timeout=timeout, unanswered=True)
    if state.status is not PidfileStatus.ABSENT and not overwritten(state):
        return None
    try:
        return find_through_control(path, control, owner=owner, timeout=timeout, unanswered=True)
    except ControlError:
        return None  # nothing to believe


def find_through_control(
    path: StrPath,
    control: StrPath,
    *,
    owner: int | None,
    timeout: float,
    unanswered: bool = False,
) -> Found | None:
    """Ask the socket at ``control`` for the daemon's status, trusting it only as the module says.

    Args:
        path: the pidfile (missing, or locked and empty).
        control: the control socket beside it.
        owner: the uid the daemon runs as, when the caller said (``--user``).
        timeout: seconds for the exchange.
        unanswered: a server that passes every check but does not answer is
            found all the same, with no answer, for the commands that act on
            it (``stop`` signals it, ``start`` says it runs); one suspended
            (stopped by a signal, or frozen), which cannot answer before it
            runs again, at once. Without it, such a server is
            :class:`ControlSuspended`, at once too.

    Returns:
        The daemon, or None when nothing serves the path (no file, or a
        leftover nobody accepts on).

    Raises:
        ControlUntrusted: what is at the path is not to be believed (nothing was sent).
        ControlSuspended: it passed every check, and is suspended (not ``unanswered``).
        ControlError: the daemon would not answer properly, or may not be asked by us.
    """
    try:
        st = os.lstat(control)
    except OSError as exc:
        if exc.errno in NOTHING_THERE:
            return None
        raise ControlError(f"control socket {control}: {exc.strerror or exc}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise not_a_socket(control, st.st_mode)
    _check_placed(control, st, owner)
    try:
        pidfile: os.stat_result | None = os.stat(path, follow_symlinks=False)
    except OSError:
        pidfile = None
    if pidfile is not None and read_pidfile(path).status is PidfileStatus.DEAD:
        # Nobody holds it: not the daemon's file (a copy moved over it), which
        # it no more has open than a removed one's path.
        pidfile = None
    peers: list[int] = []

    def check_peer(pid: int, uid: int) -> None:
        if uid not in (0, st.st_uid):
            raise ControlUntrusted(
                f"control socket {control} (uid {st.st_uid}'s) is served by pid {pid} "
                f"running as uid {uid}; not trusted"
            )
        if pidfile is not None:
            opened = has_file_open(pid, pidfile)
        else:
            opened = any_open_file(pid, _followed)
        if opened is False and pidfile is not None:
            raise ControlUntrusted(
                f"control socket {control} is served by pid {pid}, which does not hold "
                f"the pidfile {path}; not trusted"
            )
        if opened is None:
            _check_unseen(pid, control, st)
        peers.append(pid)
        held = suspension(pid)
        if held is not None:
            raise ControlSuspended(pid, held)  # it reads nothing until run again: no wait

    def check_pidfile(pid: int) -> None:
        # Asked after the answer, not before: a daemon whose start raced our
        # read of the path may only now show its pidfile there.
        if pidfile is None and opened_from(pid, path) is False:
            # Another daemon, whose control= happens to be this pidfile's
            # socket path: stopping it would stop the wrong instance.
            raise ControlUntrusted(
                f"control socket {control} is served by pid {pid}, which has no pidfile "
                f"{path} open (another daemon's socket?); not trusted"
            )

    request = {"v": VERSION, "cmd": "status"}
    name = f"control socket {control}"
    deadline = time.monotonic() + timeout

    def ask_once() -> dict[str, Any]:
        # What is left: a try begun late in the busy retries must not wait all of it again.
        left = max(0.001, deadline - time.monotonic())
        return exchange(
            control, request, timeout=left, check_peer=check_peer, name=name, said=timeout
        )

    try:
        # A daemon whose control slots are all taken answers "busy" for now.
        answer = ask_patiently(ask_once, until=time.monotonic() + min(timeout, BUSY_PATIENCE))
    except (ControlAbsent, ControlRefused):
        return None  # a leftover of a killed daemon: nobody serves it
    except (ControlBusy, ControlTimeout, ControlSuspended) as exc:
        if len(set(peers)) != 1 or (not unanswered and isinstance(exc, ControlTimeout)):
            raise
        # Busy, suspended or held up: the peer passed every check above; only
        # its answer is missing.
        check_pidfile(peers[0])
        if not unanswered and isinstance(exc, ControlSuspended):
            raise
        return Found(peers[0], None)
    peer = peers[-1]
    if len(set(peers)) != 1 or answer.get("ok") is not True or answer.get("pid") != peer:
        raise ControlUntrusted(
            f"control socket {control}: the answer does not name its server (pid {peer}); "
            "not trusted"
        )
    check_pidfile(peer)
    return Found(peer, answer)


def opened_from(pid: int, path: StrPath) -> bool | None:
    """Whether ``pid`` has a file opened at ``path`` open (now removed, or there again).

    A daemon keeps its pidfile open (and locked) as long as it runs: after an
    ``rm`` the kernel names that descriptor by the file's canonical path plus
    `` (deleted)``; a daemon whose start raced our read of the path shows the
    path itself. None when /proc will not tell.
    """
    from .._prefork._exit_mark import canonical_path

    canonical = canonical_path(os.fspath(path))
    shown_as = (canonical, canonical + " (deleted)")
    return any_open_file(pid, lambda fd: os.readlink(fd) in shown_as)


def _followed(fd: str) -> bool:
    """Nothing to match: only whether the descriptor ``fd`` may be followed (else OSError)."""
    os.stat(fd)
    return False


def _check_unseen(pid: int, control: StrPath, st: os.stat_result) -> None:
    """Refuse ``pid``, whose descriptors we may not see, unless it runs as the socket's owner.

    SO_PEERCRED names the process that called listen(), as it was then: the
    service account's listener may have exited, its socket kept by a child,
    and its pid come round to a root process that hides its descriptors (a
    setuid program, another daemon). The socket's owner is believed about
    its own processes only, as a pidfile's is (see ``_pidfile_status``).
    """
    from .._prefork._procfs import uids

    ids = uids(pid)
    strangers = [] if ids is None else sorted(set(ids) - {st.st_uid})
    if strangers:
        raise ControlUntrusted(
            f"control socket {control} (uid {st.st_uid}'s) is served by pid {pid}, which runs"
            f" as uid {strangers[0]} and whose descriptors cannot be seen; not trusted"
        )


def _check_placed(control: StrPath, st: os.stat_result, owner: int | None) -> None:
    """Refuse a socket another user could have put at the path (see the module's rules).

    Raises:
        ControlUntrusted: naming the owner and the directory's fault.
    """
    parent = os.path.dirname(os.fspath(control)) or "."
    directory = os.stat(parent)
    if is_open_to_all(directory.st_mode):
        raise ControlUntrusted(
            f"control socket {control} lies in a world-writable directory without the sticky "
            "bit; not trusted"
        )
    shared = directory.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if shared and st.st_uid not in (0, os.geteuid(), directory.st_uid, owner):
        raise ControlUntrusted(
            f"control socket {control} belongs to uid {st.st_uid} (another user) in a shared "
            "directory (give --user when it is the daemon's user); not trusted"
        )


def find_lock_holder(path: StrPath) -> int | None:
    """The one process whose open file holds ``path``'s ``flock``, None if not exactly one.

    Only the processes we may look into are seen (all of them for root);
    another user's process that locked the file is never the one (see
    :mod:`.._prefork._lockholder`).
    """
    from .._prefork._lockholder import foreign_holder, lock_holders

    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    holders = lock_holders(st)
    if len(holders) != 1:
        return None
    [pid] = holders
    return None if foreign_holder(pid, st) is not None else pid


def wait_for_pid(path: StrPath) -> PidfileState:
    """Read ``path``, giving a daemon that holds the lock a moment to write its pid."""
    deadline = time.monotonic() + _STARTING_GRACE
    while True:
        state = read_pidfile(path)
        if state.status is not PidfileStatus.RUNNING or state.pid is not None:
            return state
        if time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def serving_without_pidfile(
    pidfile: StrPath, control: StrPath, owner: int | None, state: PidfileState
) -> str | None:
    """What ``start`` says of a daemon serving ``control``, its pidfile removed or replaced.

    ``state``: the pidfile's reading (absent, or held by nobody).
    """
    found = find_lost(pidfile, state, control, owner=owner, timeout=_ASK_TIMEOUT)
    if found is None:
        return None  # nothing to believe: the start says what is in the way
    return (
        f"already running (pid {found.pid} still serves control socket {control}, but its "
        f"{why_no_pid(pidfile, state)}; 'aiodaemon stop --pidfile {pidfile}' finds it there)"
    )
