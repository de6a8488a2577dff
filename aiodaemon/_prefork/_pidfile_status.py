"""Reading a pidfile from outside: whether a live daemon holds it, and its pid.

For the control commands (``aiodaemon status``, ``stop``...), ``PidFile`` of
``pep3143`` and the public ``aiodaemon.read_pidfile``. Only reads: never takes
the lock for longer than a test of it, never waits on what sits at the path.
What a pid in the file looks like, and who has the file open, is :mod:`._pidfile`'s.
"""

from __future__ import annotations

import enum
import fcntl
import os
import stat
import sys

from ._filekind import describe_mode
from ._pidfile import (
    _not_regular,
    _special_kind,
    has_file_open,
    parse_pid,
    read_pid_text,
    reloading_mark,
    stopping_mark,
)

__all__ = [
    "PidfileState",
    "PidfileStatus",
    "abstract_listener",
    "read_pidfile",
    "says_reloading",
    "says_stopping",
]

# O_NOFOLLOW and O_NONBLOCK as for the acquire side (see ._pidfile).
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK


class PidfileStatus(enum.Enum):
    """What a pidfile says about its daemon."""

    # Attribute docstrings, not ``#:`` comments: the API reference shows these.
    RUNNING = "running"
    """A live daemon holds the file's lock and has the file open."""
    DEAD = "dead"
    """The file exists but nobody holds its lock: the daemon died without cleaning up."""
    ABSENT = "absent"
    """No file at all."""
    UNKNOWN = "unknown"
    """The file cannot be read (permissions, not a regular file), its holder
    cannot be verified, or it is locked while holding no pid."""


class PidfileState:
    """A reading of a pidfile: its status and the pid it holds (None if empty or garbage)."""

    # A plain class, not a dataclass: importing dataclasses (and inspect) would
    # be most of what ``aiodaemon status`` costs.
    __slots__ = ("contested", "denied", "detail", "pid", "status", "unparsable")

    #: why it is UNKNOWN, or what unparsable data it holds instead of a pid.
    detail: str
    #: the file holds bytes that are not a pid (``detail`` shows them).
    unparsable: bool
    #: UNKNOWN because the caller may not open the file (or search its directory).
    denied: bool
    #: UNKNOWN because the lock is held by a process that cannot be the daemon
    #: named (or, empty, any daemon): a stranger, or for a moment a command
    #: removing a stale file (``aiodaemon stop``), which locks it to do so.
    contested: bool

    def __init__(
        self,
        status: PidfileStatus,
        pid: int | None,
        detail: str = "",
        *,
        unparsable: bool = False,
        denied: bool = False,
        contested: bool = False,
    ) -> None:
        self.status = status
        self.pid = pid
        self.detail = detail
        self.unparsable = unparsable
        self.denied = denied
        self.contested = contested

    def __repr__(self) -> str:
        return f"PidfileState({self.status!r}, {self.pid!r}, {self.detail!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PidfileState):
            return NotImplemented
        return (self.status, self.pid, self.detail) == (other.status, other.pid, other.detail)

    def __hash__(self) -> int:
        return hash((self.status, self.pid, self.detail))

    @property
    def running_pid(self) -> int | None:
        """The pid that may be signalled: only a verified lock holder's."""
        return self.pid if self.status is PidfileStatus.RUNNING else None


def read_pidfile(path: str | os.PathLike[str], *, again: bool = True) -> PidfileState:
    """Read ``path`` and tell whether a live daemon holds it.

    A pid counts as running only when the file is locked *and* that process
    has this very file open, so a recycled pid is never taken for the daemon.
    Anything but a regular file (a FIFO, socket, directory) is UNKNOWN, and
    never waited on. ``again``: read once more a file replaced as it was read.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return PidfileState(PidfileStatus.ABSENT, None)
    except OSError as exc:
        kind = _special_kind(path)
        if kind is not None:
            return PidfileState(PidfileStatus.UNKNOWN, None, _not_regular(path, kind))
        return PidfileState(
            PidfileStatus.UNKNOWN,
            None,
            f"cannot open {path}: {exc.strerror}",
            denied=isinstance(exc, PermissionError),
        )
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            why = _not_regular(path, describe_mode(st.st_mode))
            return PidfileState(PidfileStatus.UNKNOWN, None, why)
        try:
            data = read_pid_text(fd)
        except OSError as exc:
            # EIO: a failing disk or network file system (or /proc/PID/mem).
            return PidfileState(PidfileStatus.UNKNOWN, None, f"cannot read {path}: {exc.strerror}")
        pid = parse_pid(data)
        garbage = "" if pid is not None or not data.strip() else _garbage(path, data)
        if not _is_locked(fd):
            # Unlocked: maybe a stale file's removal (`stop` unlinks, then
            # unlocks) ended since the open; what the path holds now counts.
            try:
                moved = not os.path.samestat(os.stat(path, follow_symlinks=False), st)
            except FileNotFoundError:
                return PidfileState(PidfileStatus.ABSENT, None)
            except OSError:
                moved = False
            if moved and again:
                return read_pidfile(path, again=False)
            return PidfileState(PidfileStatus.DEAD, pid, garbage, unparsable=bool(garbage))
        if garbage:
            # Locked, yet no pid: whoever holds it is not a daemon of ours (one
            # empties the file under the lock before anything else).
            return PidfileState(PidfileStatus.UNKNOWN, None, garbage, unparsable=True)
        if pid is None:
            # Locked but empty: a daemon between taking the lock and writing its
            # pid, or another user's process locking a file it may only read.
            foreign = _foreign_locker(st)
            if foreign is not None:
                detail = f"pidfile {path}: {foreign}"
                return PidfileState(PidfileStatus.UNKNOWN, None, detail, contested=True)
            return PidfileState(PidfileStatus.RUNNING, None, "starting")
        opened = has_file_open(pid, st)
        if opened is False:
            detail = f"pid {pid} does not hold {path}'s lock"
            return PidfileState(PidfileStatus.UNKNOWN, pid, detail, contested=True)
        from ._lockholder import foreign_holder

        # A recycled pid can be another user's process that locked the file.
        foreign = foreign_holder(pid, st)
        if foreign is None and opened is None:
            foreign = _unseen_stranger(pid, st)
        if foreign is not None:
            detail = f"pidfile {path}: {foreign}"
            return PidfileState(PidfileStatus.UNKNOWN, pid, detail, contested=True)
        return PidfileState(PidfileStatus.RUNNING, pid)
    finally:
        os.close(fd)


def _unseen_stranger(pid: int, st: os.stat_result) -> str | None:
    """Why ``pid``, whose descriptors we may not look at, cannot be taken for the daemon; or None.

    A daemon after its drop is not dumpable: a caller without CAP_SYS_PTRACE
    (root in a container's default set, the service account itself) cannot see
    it hold the file. Then only the file's owner, who alone may write it, is
    believed, and only about its own processes: signalling those gives it
    nothing it could not do itself. Root's processes are the daemon's only in
    root's own pidfile, else the service account could have ``stop`` kill any
    process that hides its descriptors (a setuid program, another daemon).
    None too when /proc does not show ``pid`` at all (``hidepid``: the kernel's
    own permission check then stands between the caller and it).
    """
    from ._procfs import uids

    ids = uids(pid)
    if ids is None:
        return None
    strangers = sorted(set(ids) - {st.st_uid})
    if not strangers:
        return None
    return (
        f"pid {pid} runs as uid {strangers[0]}, not as the pidfile's owner (uid {st.st_uid}),"
        " and whether it holds the file cannot be seen; not trusted"
    )


def _foreign_locker(st: os.stat_result) -> str | None:
    """Why a process locking the empty pidfile ``st`` is not its daemon; or None."""
    from ._lockholder import foreign_holder, lock_holders

    # Any one: a stranger's lock may be shared with a child it started (a
    # setuid program too), as a daemon's is with its launcher for a moment.
    for pid in sorted(lock_holders(st)):
        foreign = foreign_holder(pid, st)
        if foreign is not None:
            return foreign
    return None


def _garbage(path: str | os.PathLike[str], data: bytes) -> str:
    """How a pidfile holding no pid is described: its first bytes, escaped."""
    excerpt = data[:32].decode("ascii", "backslashreplace")
    excerpt = excerpt.encode("unicode_escape").decode("ascii").replace("\\\\x", "\\x")
    more = "..." if len(data) > 32 else ""
    return f"pidfile {path} holds no pid but unparsable data: '{excerpt}'{more}"


def _is_locked(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def says_stopping(pid: int) -> bool:
    """Whether the daemon ``pid`` (the verified lock holder) has begun to stop.

    It listens on its stopping mark from its shutdown's start to its exit (see
    :meth:`._pidfile.Pidfile.mark_stopping`); whoever else listens there is not it.
    """
    return _marked(stopping_mark(pid), pid)


def says_reloading(pid: int) -> bool:
    """Whether the daemon ``pid`` (the verified lock holder) runs its reload hooks now.

    It listens on its reloading mark while it does (see ``_run._reload``).
    """
    return _marked(reloading_mark(pid), pid)


def _marked(name: str, pid: int) -> bool:
    """Whether the daemon ``pid`` itself listens on the abstract socket ``name``."""
    # Never waits: nobody listens there (it runs), or its queue is full: False.
    listener = abstract_listener(name)
    if listener is None or listener[0] != pid:
        return False
    from ._procfs import uids  # only the commands ask

    # SO_PEERCRED names the process that called listen(), gone or not: another
    # user's process that had this pid before pids came round may have listened
    # there, its socket kept open by a child. The daemon's own runs as it does.
    ids = uids(pid)
    return listener[1] in ((0, os.geteuid()) if ids is None else (ids[1],))


def abstract_listener(name: str, wait: float = 0.0) -> tuple[int, int] | None:
    """The pid and uid of the process listening on the abstract unix socket ``name``.

    Anyone may bind such a name: callers judge the pid and uid (``SO_PEERCRED``).
    None when nobody listens, or its queue stays full for ``wait`` seconds (0:
    a unix connect is queued at once, or refused).
    """
    import _socket  # as the control client's: socket.py costs a status ~2 ms

    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        probe.settimeout(wait)
        probe.connect(name)
        # (pid, uid, gid) as native ints.
        creds = probe.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    except OSError:
        return None
    finally:
        probe.close()
    pid, uid = (int.from_bytes(creds[i : i + 4], sys.byteorder, signed=True) for i in (0, 4))
    return pid, uid
