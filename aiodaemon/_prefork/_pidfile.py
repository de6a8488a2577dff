"""The daemon's pidfile: an ``flock``-held file with its pid, taken before the fork.

The lock, never ``kill(pid, 0)``, decides whether a daemon runs: a pid in a file
outlives its process and may be reused by an unrelated one, a lock does not.
What the file holds and who holds it (:func:`parse_pid`, :func:`has_file_open`) is checked
here and by the read side for the control commands, :mod:`._pidfile_status`.
"""

from __future__ import annotations

import _thread
import enum
import errno
import fcntl
import os
import stat
import time

from ..exceptions import AlreadyRunningError, StartupError
from ._filekind import describe_mode
from ._pidns import PID_NAMESPACE
from ._sharedfile import ForeignFileError, OpenDirectoryError, open_in_directory, unlink_if

# Not typing.TYPE_CHECKING, and pathlib only for annotations: the control
# commands read pidfiles and should not pay for importing either.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from pathlib import Path

__all__ = [
    "Pidfile",
    "acquire_pidfile",
    "has_file_open",
    "open_mark",
    "parse_pid",
    "read_pid_text",
    "reloading_mark",
    "stopping_mark",
]

# O_NOFOLLOW: a symlink planted at the path must not redirect our write
# (the classic /tmp symlink attack turns a root daemon into a file clobberer).
# O_NONBLOCK: opening a FIFO planted at the path must not wait for a writer
# forever; the file type is checked right after the open.
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK

#: How long a start waits for readers probing the lock (``status``, ``pkill -L``)
#: to let go. A probe holds its shared lock for microseconds; only a storm of
#: them could fill this.
_PROBE_PATIENCE = 2.0
#: How long an exclusive lock on a file naming no live holder may be someone's
#: stale-file cleanup (preempted on a busy machine) rather than a starting daemon.
_CLEANUP_GRACE = 0.5


class Pidfile:
    """A locked pidfile owned by this daemon; the lock lives as long as ``fd`` is open.

    The fd is inherited across fork: the launching process takes the lock, the
    daemon keeps it after the launcher exits.
    """

    def __init__(self, path: str | Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        #: the path as this process sees it: changed by a chroot, None when outside it.
        self.visible_path: str | None = os.fspath(path)
        #: whose pid the file may hold when it is removed; None: this process's.
        self.owner: int | None = None
        #: the stopping mark's socket (see :meth:`mark_stopping`), once reserved or bound.
        self._mark: _socket.socket | None = None
        #: whether the mark is bound and listening.
        self._marked = False
        self._marking = _thread.allocate_lock()
        #: the file, once the launcher left its descriptor to the daemon (see
        #: :meth:`leave_to_daemon`): :meth:`remove` then goes by path.
        self._left: os.stat_result | None = None
        #: whether the removal marks the exit (see :meth:`remove`): the run phase's daemon.
        self._marks_exit = False
        #: the exit mark's name, when it had to be known before a chroot.
        self._exit_name: str | None = None

    def __enter__(self) -> Pidfile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def write_pid(self, pid: int | None = None) -> None:
        """Replace the contents with ``pid`` and a newline, durably.

        Raises:
            StartupError: ``cannot write pidfile PATH: reason`` (a full disk).
        """
        pid = os.getpid() if pid is None else pid
        data = f"{pid}\n".encode()
        try:
            os.ftruncate(self.fd, 0)
            written = 0
            while written < len(data):
                # A short write is RLIMIT_FSIZE cutting the file: the next one fails (EFBIG).
                written += os.pwrite(self.fd, data[written:], written)
            os.fsync(self.fd)
        except OSError as exc:
            # A part of a pid would name another process: leave the file empty,
            # as one the release then removes. (try, not contextlib.suppress:
            # `aiodaemon status` need not import it.)
            try:  # noqa: SIM105
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            raise StartupError(
                f"cannot write pidfile {self.path}: {exc.strerror}", option="pidfile"
            ) from exc

    def chown(self, uid: int | None, gid: int | None) -> None:
        """Give the file to the user we drop to, so it may unlink it in a sticky directory."""
        if uid is not None or gid is not None:
            os.fchown(self.fd, -1 if uid is None else uid, -1 if gid is None else gid)

    def enter_chroot(self, root: str | Path) -> None:
        """Record where the file is seen from inside ``root``; call just before the chroot."""
        from ._exit_mark import exit_mark
        from ._jailpath import seen_from

        self.visible_path = seen_from(os.fspath(root), os.fspath(self.path))
        # As the commands outside see the path: inside, it cannot be resolved.
        self._exit_name = exit_mark(os.fspath(self.path))

    def remove(self, owner: int | None = None) -> None:
        """Unlink the file if it is still ours (or ``owner``'s), then release the lock.

        When the directory forbids the unlink (after a privilege drop), the file
        is emptied instead, so no reader can mistake it for a live daemon's.
        Best effort, as for the sockets: a file that can be neither (immutable,
        a failing disk) stays, unlocked, as a dead daemon's, which blocks no start.

        The run phase's daemon marks its exit first, and keeps the mark and
        the descriptor (unlocked) until its process ends (see ``_exit_mark``).
        """
        owner = self.owner if owner is None else owner
        if self.fd < 0:
            if self._left is not None:
                self._remove_left(owner)
            return
        mark = None
        gone = False
        try:
            if _read_pid(self.fd) not in (owner or os.getpid(), None):
                return
            ours = os.fstat(self.fd)
            if self._marks_exit and owner in (None, os.getpid()):
                mark = self._open_exit_mark()
            try:
                # Checked and unlinked through one descriptor of the directory:
                # only this very file, never one put at the path since.
                removed = self.visible_path is not None and unlink_if(
                    self.visible_path, lambda st: os.path.samestat(st, ours)
                )
            except OSError:
                removed = False
            if not removed:
                # Unreachable by path (outside our chroot, or in a directory the user
                # we dropped to cannot search), no longer at it, or in a directory
                # that forbids the unlink: the locked fd is still ours, so empty it
                # rather than leave a pid that reads as "dead".
                os.ftruncate(self.fd, 0)
            gone = True
        except OSError:
            # Raised here, it ended a graceful stop in a traceback and status 1,
            # and took a failed start's error from its launcher.
            pass
        finally:
            if mark is not None and gone:
                self._keep_until_exit(*mark)
            else:
                if mark is not None:
                    os.close(mark[1])
                self.close()

    def _open_exit_mark(self) -> tuple[str, int] | None:
        """The exit mark's name and listening descriptor; None if it cannot be had."""
        try:
            # Loaded before any drop or chroot (see aiodaemon._launch._preload).
            from ._exit_mark import exit_mark, open_exit_mark
        except ImportError:
            return None
        name = self._exit_name or exit_mark(os.fspath(self.path))
        fd = open_exit_mark(name)
        return None if fd is None else (name, fd)

    def _keep_until_exit(self, name: str, mark: int) -> None:
        """Keep the exit mark and the descriptor until the process ends; the lock goes now.

        Unlocked: an emptied file is free for the next start at once.
        """
        from ._exit_mark import keep_until_exit

        try:  # noqa: SIM105 (see write_pid)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError:
            pass
        keep_until_exit(name, mark, self.fd)
        self.fd = -1
        self.close()

    def leave_to_daemon(self) -> None:
        """Close the launcher's copy of the descriptor, just forked; :meth:`remove` goes by path.

        The lock stays the daemon's: an ``flock`` belongs to the open file,
        which the fork shares, and only the close of its last descriptor (or
        ``LOCK_UN``, never used here) releases it.
        """
        if self.fd < 0:
            return
        try:
            self._left = os.fstat(self.fd)
        except OSError:
            self._left = None  # nothing to know it by: never removed from here
        self.close()

    def _remove_left(self, owner: int | None) -> None:
        """:meth:`remove` once the descriptor was left to the daemon: by path, under the lock.

        The lock is taken, never waited for: held, the file is a daemon's (the
        one started, alive after all, or one started since), and is left. Taken,
        no start can take the file from under us (``stop`` removes a stale
        pidfile the same way); a ``start`` meanwhile waits, then opens the path
        again.
        """
        left, self._left = self._left, None
        path = self.visible_path
        if left is None or path is None:
            return
        try:
            fd = os.open(path, _OPEN_FLAGS & ~os.O_CREAT)
        except OSError:
            return  # removed by the daemon (or by hand)
        try:
            if not os.path.samestat(os.fstat(fd), left):
                return  # another file since: not ours
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _read_pid(fd) not in (owner or os.getpid(), None):
                return
            try:
                removed = unlink_if(path, lambda st: os.path.samestat(st, left))
            except OSError:
                removed = False
            if not removed:
                os.ftruncate(fd, 0)  # as remove() does: no pid that reads as "dead"
        except OSError:
            pass  # locked (BlockingIOError) or not ours to change: left as it is
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the descriptor (which releases the lock) without touching the file."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._mark is not None:
            # After the lock: nobody reads "stopping" of a daemon that is gone.
            self._mark.close()
            self._mark = None
            self._marked = False

    def reserve_mark(self) -> int | None:
        """Open the stopping mark's socket now, for :meth:`mark_stopping` to bind; its fd.

        A daemon out of descriptors when it begins to stop (a leak in the
        program, a low ``RLIMIT_NOFILE``) could not open it then: ``status``
        said "running" for its whole shutdown, and a ``stop`` meanwhile sent
        the second SIGTERM that forces the exit. None if it cannot be opened
        (then :meth:`mark_stopping` tries again).
        """
        # Only the run phase's daemon reserves it: its pidfile's removal marks its exit.
        self._marks_exit = True
        if self.fd >= 0 and self._mark is None:
            self._mark = _open_mark()
        return self.mark_fileno()

    def mark_fileno(self) -> int | None:
        """The stopping mark's fd, once reserved or bound; None before."""
        return None if self._mark is None else self._mark.fileno()

    def mark_stopping(self) -> None:
        """Tell ``status`` from now on that the daemon holding the file is stopping.

        Binds the abstract socket :func:`stopping_mark` names, listening and
        never accepting, until :meth:`close`: the control socket, which says
        "stopping" meanwhile, closes before the log drain and the release, and
        a daemon may have none. Best effort: a name taken (by anyone) leaves
        ``status`` to say "running", as it did.
        """
        # The loop and the unread-stop watcher (see _run._forced) may both mark.
        with self._marking:
            if self.fd < 0 or self._marked:
                return
            mark = self._mark if self._mark is not None else _open_mark()
            self._mark = None
            if mark is None or not _listen_on(mark, stopping_mark(os.getpid())):
                return
            self._mark = mark
            self._marked = True


def _open_mark() -> _socket.socket | None:
    """A new, unbound socket for the stopping mark; None if none can be opened."""
    # Loaded by now (asyncio imports it): no import from disk in a run.
    import _socket

    try:
        return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    except OSError:
        return None


def open_mark(name: str) -> _socket.socket | None:
    """A socket listening on the abstract ``name`` (a mark), never accepting; None if none can."""
    mark = _open_mark()
    if mark is None or not _listen_on(mark, name):
        return None
    return mark


def _listen_on(mark: _socket.socket, name: str) -> bool:
    """Bind ``mark`` to the abstract ``name`` and listen; closed, False, when it cannot."""
    # Loaded by now (asyncio imports it): no import from disk in a run.
    import _socket

    try:
        mark.bind(name)
        # Each look stays queued until the mark goes: room for every one meanwhile.
        mark.listen(_socket.SOMAXCONN)
    except OSError:
        mark.close()
        return False
    return True


def stopping_mark(pid: int) -> str:
    """The abstract unix socket name the stopping daemon ``pid`` listens on (see ``status``).

    Anyone may bind a name in the abstract namespace: a reader trusts it only
    when ``SO_PEERCRED`` names ``pid``, the verified holder of the pidfile's lock.
    """
    return f"\0aiodaemon-stopping-{PID_NAMESPACE}-{pid}"


def reloading_mark(pid: int) -> str:
    """The abstract unix socket name the daemon ``pid`` listens on while it reloads.

    For ``upgrade`` without a control socket, which the daemon refuses while it
    reloads (only its log said so); trusted as :func:`stopping_mark` is.
    """
    return f"\0aiodaemon-reloading-{PID_NAMESPACE}-{pid}"


def acquire_pidfile(path: str | Path, *, owner: int | None = None) -> Pidfile:
    """Open and lock ``path``, emptying it only once the lock is ours.

    Args:
        path: the pidfile.
        owner: the uid the daemon drops to: its pidfile from a previous run
            is accepted in a shared sticky directory, as root's and ours are.

    Raises:
        AlreadyRunningError: another live process holds the lock.
        StartupError: the file cannot be opened (symlink, permissions, not a
            file, another user's file in a shared sticky directory, a
            world-writable directory without the sticky bit).
    """
    deadline = time.monotonic() + _PROBE_PATIENCE
    while True:
        fd = _open_pidfile(path, owner)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StartupError(_not_regular(path, describe_mode(st.st_mode)), option="pidfile")
            if st.st_nlink > 1:
                # A hard link planted in a sticky directory: truncating it would
                # clobber the other name's file (fs.protected_hardlinks may be off).
                raise StartupError(
                    f"pidfile {path} has {st.st_nlink} hard links; refusing to use it",
                    option="pidfile",
                )
            outcome = _lock_exclusive(fd, path, st, deadline)
            if outcome is _Lock.HELD:
                raise AlreadyRunningError(str(path), _read_pid(fd))
            if outcome is _Lock.TAKEN:
                _refuse_other_content(fd, path)
                # Only now is the content ours to change; an empty locked file reads
                # as "starting", never as the stale pid of a previous daemon.
                os.ftruncate(fd, 0)
                # 0644 minus the daemon's umask (set for the whole acquire phase): an
                # existing file keeps no wider mode than a fresh one would get.
                mask = os.umask(0o022)
                os.umask(mask)
                os.fchmod(fd, 0o644 & ~mask)
                if os.geteuid() == 0 and st.st_uid != 0:
                    # Left by a run that dropped to user= (or planted by the
                    # directory's owner): that user could write any pid into
                    # root's pidfile, and readers trust the file's owner's
                    # processes as its holders: `stop` would signal theirs.
                    # Taken back; a drop gives it to its user again afterwards.
                    os.fchown(fd, 0, os.getegid())
                return Pidfile(path, fd)
        except OSError as exc:
            # EIO from a failing disk or network file system (or /proc/PID/mem,
            # a "regular file" no read succeeds on): one line, not a traceback.
            os.close(fd)
            raise StartupError(
                f"cannot use pidfile {path}: {exc.strerror or exc}", option="pidfile"
            ) from exc
        except BaseException:
            os.close(fd)
            raise
        # MOVED: a stale-pidfile cleanup (``stop``) unlinked the file after our
        # open. A lock on it would hide this daemon from every command, and let
        # a second one start: open the path again.
        os.close(fd)
        if time.monotonic() > deadline:
            raise StartupError(
                f"pidfile {path} keeps being removed while we start; try again", option="pidfile"
            )


def _refuse_other_content(fd: int, path: str | Path) -> None:
    """Refuse a file holding anything but a pid: a mistyped ``--pidfile`` may name any file.

    ``stop`` leaves such a file alone; the start truncated it (``--pidfile
    app.py``: the program's source gone, then the file removed at exit).

    Raises:
        StartupError: the file holds bytes other than ASCII digits and whitespace.
    """
    data = read_pid_text(fd)
    if not data.strip() or parse_pid(data) is not None:
        return
    size = os.fstat(fd).st_size
    raise StartupError(
        f"pidfile {path} holds something other than a pid ({size} bytes; not a pidfile?):"
        " refusing to overwrite it",
        option="pidfile",
    )


#: the most a pidfile holds: a pid (at most 10 digits) and a newline, with room for spaces.
_PID_TEXT_MAX = 64


def _open_pidfile(path: str | Path, owner: int | None) -> int:
    try:
        # Checked on the directory the file is opened in (not only by the
        # pidfile= option's early check), so PidFile of pep3143 gets it too.
        return open_in_directory(path, _OPEN_FLAGS, 0o644, owner=owner, refuse_open_directory=True)
    except OpenDirectoryError as exc:
        raise StartupError(f"pidfile {path}: {exc.strerror}", option="pidfile") from exc
    except ForeignFileError as exc:
        # A planted file, maybe locked and naming a pid of the other user's
        # choosing: adopting it would let that user decide what `stop` signals.
        raise StartupError(f"pidfile {path} {exc.strerror}", option="pidfile") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StartupError(
                f"pidfile {path} is a symlink; refusing to follow it", option="pidfile"
            ) from exc
        kind = _special_kind(path)
        if kind is not None:
            raise StartupError(_not_regular(path, kind), option="pidfile") from exc
        raise StartupError(f"cannot open pidfile {path}: {exc.strerror}", option="pidfile") from exc


class _Lock(enum.Enum):
    TAKEN = "taken"
    #: held exclusively by another process for longer than a cleanup takes.
    HELD = "held"
    #: the file is no longer at the path.
    MOVED = "moved"


def _lock_exclusive(fd: int, path: str | Path, st: os.stat_result, deadline: float) -> _Lock:
    """Take the exclusive lock of the file at ``path`` (opened as ``fd``, ``st``).

    Other processes take the lock for an instant without running a daemon: a
    reader testing it (our ``status``, ``pkill -L``) holds a shared lock, and
    ``stop``'s stale-file cleanup an exclusive one before it unlinks the file.
    Either would make a single non-blocking attempt fail as if a daemon ran, so
    try again: while only shared holders remain (no daemon can hold the file
    then), and for a moment while an exclusive holder may be such a cleanup.
    The lock counts only if the file is still the one at ``path`` once held.

    Raises:
        StartupError: readers kept the file locked until ``deadline``.
    """
    delay = 0.0005
    exclusive_since: float | None = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            return _Lock.TAKEN if _still_at(path, st) else _Lock.MOVED
        if not _still_at(path, st):
            return _Lock.MOVED
        now = time.monotonic()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            if pid is not None and has_file_open(pid, st):
                return _held_by_daemon(path, st)  # a daemon that has written its pid
            # Empty, or naming a pid that does not hold it: a daemon still
            # starting, or a cleanup about to unlink the file.
            exclusive_since = now if exclusive_since is None else exclusive_since
            if now - exclusive_since > _CLEANUP_GRACE:
                return _held_by_daemon(path, st)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            exclusive_since = None
            if now > deadline:
                # Another user's process keeping a shared lock is named, as an
                # exclusive one is: "try again" would never help.
                _held_by_daemon(path, st)
                raise StartupError(
                    f"pidfile {path} stays locked by readers testing it; try again",
                    option="pidfile",
                )
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


def _held_by_daemon(path: str | Path, st: os.stat_result) -> _Lock:
    """HELD, once no holder of the lock (exclusive or shared) is another user's process.

    Raises:
        StartupError: a process no daemon of this pidfile could be holds the
            lock (see :mod:`._lockholder`): "already running" would be a lie.
    """
    from ._lockholder import foreign_holder, lock_holders

    for pid in sorted(lock_holders(st)):
        foreign = foreign_holder(pid, st)
        if foreign is not None:
            raise StartupError(
                f"pidfile {path}: {foreign} (keep pidfiles where only the daemon's user may enter)",
                option="pidfile",
            )
    return _Lock.HELD


def _still_at(path: str | Path, st: os.stat_result) -> bool:
    """Whether ``path`` still names the file ``st`` describes."""
    try:
        current = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return os.path.samestat(current, st)


def _special_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it exists and is not a regular file (after a failed open)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else describe_mode(mode)


def _not_regular(path: str | os.PathLike[str], kind: str) -> str:
    return f"pidfile {path} is {kind}, not a regular file"


def has_file_open(pid: int, st: os.stat_result) -> bool | None:
    """Whether ``pid`` has the file ``st`` describes open; None when /proc does not let us look.

    A pid written in a pidfile is the holder's only if it has the file open:
    else it names a process that died, or a reused pid.
    """
    from ._procfs import any_open_file

    return any_open_file(pid, lambda fd: os.path.samestat(os.stat(fd), st))


def _read_pid(fd: int) -> int | None:
    """The pid the pidfile open on ``fd`` names (see :func:`parse_pid`)."""
    return parse_pid(read_pid_text(fd))


def read_pid_text(fd: int) -> bytes:
    """The bytes of the pidfile open on ``fd``, for :func:`parse_pid`."""
    # One byte more than a pidfile holds: a longer file is none.
    return os.pread(fd, _PID_TEXT_MAX + 1, 0)


def parse_pid(data: bytes) -> int | None:
    """The pid a pidfile's bytes name: one number above 0, blanks around it; else None.

    Anything more (``123\nxyz``, a second line, more than a pidfile holds) is
    no file aiodaemon wrote, so no pid: ``status``, ``stop`` and the start all
    read a file through this, and so agree on what it is.
    """
    text = data.strip()
    if len(data) > _PID_TEXT_MAX or not text.isdigit() or len(text) > 10:
        return None
    pid = int(text)
    return pid if pid > 0 else None
