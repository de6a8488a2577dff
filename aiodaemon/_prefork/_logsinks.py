"""Where log records end up: a file or a stream (fd 2), and the targets a daemon opens.

Syslog is :mod:`._syslogsink`. :class:`LogTargets` holds the file and syslog
sinks a daemon opens on the terminal before the fork (a missing directory or an
unreachable syslog fails the start with one line); the writer thread of
:mod:`aiodaemon._logs._logging` takes them over in the daemon.

Sinks are opened in the launching process (so a bad path or an unreachable
``/dev/log`` fails on the terminal, and so they survive a chroot and the
privilege drop) and written to only by the writer thread of
:mod:`aiodaemon._logs._logging`; nothing here is touched by the event loop thread.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..exceptions import StartupError

if TYPE_CHECKING:
    from typing import Protocol, TypeGuard

    from ._config import Options
    from ._safeopen import CreatedFiles
    from ._syslogsink import SyslogSink

__all__ = [
    "FileSink",
    "LogTargets",
    "Record",
    "StreamSink",
    "ends_inside_line",
    "is_syslog_sink",
    "lines_not_whole",
    "names_another",
    "open_file_sink",
    "open_log_targets",
    "write_all",
    "write_waiting",
]

Record = tuple[int, bytes]


def is_syslog_sink(sink: object) -> TypeGuard[SyslogSink]:
    """Whether ``sink`` is a syslog sink, without loading their module for a daemon that has none.

    ``_syslogsink`` (with its socket checks) is imported only when ``syslog=``
    is set, so before that no sink can be one.
    """
    module = sys.modules.get("aiodaemon._prefork._syslogsink")
    return module is not None and isinstance(sink, module.SyslogSink)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data``: pipes, FIFOs and terminals may take less per call."""
    view = memoryview(data)
    while view:
        view = view[write_waiting(fd, view) :]


def write_waiting(fd: int, data: bytes | memoryview) -> int:
    """``os.write``, waiting for room as a blocking descriptor would; how many bytes it took.

    fd 2 is shared with whoever started us and with our children: one that
    sets ``O_NONBLOCK`` on it (node.js does on the stdio pipes it inherits)
    sets it for us too, and a full pipe then answers EAGAIN, which is no
    failure of the sink: its records were lost, the last one cut short.
    """
    while True:
        try:
            return os.write(fd, data)
        except BlockingIOError:
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            poller.poll()


def ends_inside_line(fd: int) -> bool | None:
    """Whether the regular file on ``fd`` ends inside a line: its last byte is no newline.

    False for an empty file; None when it cannot be told: a pipe, a terminal or
    ``/dev/null`` cannot be read back, nor a file the daemon may not read.
    """
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size == 0:
            return False
        try:
            last = os.pread(fd, 1, st.st_size - 1)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            # Opened write-only, as every log file is: read the very inode
            # through /proc (its path may name another file by now).
            reader = os.open(
                f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            )
            try:
                if not os.path.samestat(os.fstat(reader), st):
                    return None
                last = os.pread(reader, 1, st.st_size - 1)
            finally:
                os.close(reader)
    except OSError:
        return None  # no /proc (a chroot), or a file the daemon's user may not read
    # Nothing read: the file was cut short since (copytruncate), not left inside a line.
    return bool(last) and last != b"\n"


class _LineSink:
    """Appends newline-terminated records to a descriptor, surviving failed writes whole.

    A write that fails part-way (a full disk: ENOSPC, EDQUOT, EFBIG) may leave
    a record cut short at the end of the file. The next write to that file then
    starts with a newline, so that fragment is never glued to the next record,
    and every record not written whole is counted in :attr:`lost` for the log
    writer to report once writing works again. A file opened (at the start, a
    reopen, an upgrade's take-over) is read back for the same reason: the last
    run, cut short by a full disk or ``ulimit -f``, may have left its last
    record without a newline.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        #: records not written whole, since the start.
        self.lost = 0
        #: the error of the last failed write.
        self.last_error: OSError | None = None
        #: the output ends inside a record cut short (by a failed write, or before we opened it).
        self._mid_line = ends_inside_line(fd) is True

    def write(self, records: Sequence[Record]) -> None:
        """Append ``records`` in one ``write``: one syscall per batch, not per line.

        Raises:
            OSError: the write failed; the records not written whole are counted as lost.
        """
        lines = [line for _, line in records]
        data = b"".join(lines)
        if self._mid_line and ends_inside_line(self.fd) is False:
            # Another writer of the file (the other daemon of an upgrade, a
            # forked child) ended that line already: a second newline would
            # leave an empty line. Only after a failure: it costs a read.
            self._mid_line = False
        head = b"\n" if self._mid_line else b""
        view = memoryview(head + data if head else data)
        total = len(view)
        try:
            while view:
                view = view[write_waiting(self.fd, view) :]
        except OSError as exc:
            written = total - len(view)
            self.last_error = exc
            self.lost += lines_not_whole(lines, written - len(head))
            if written > len(head):
                self._mid_line = not data[: written - len(head)].endswith(b"\n")
            elif head and written:
                self._mid_line = False  # the fragment got its newline, nothing more
            raise
        self._mid_line = False


def names_another(path: str, held: os.stat_result) -> bool:
    """Whether ``path`` no longer names the file ``held`` (its ``fstat``): renamed or replaced.

    True when nothing is there (a rotation without ``create``, or a broken
    path: the reopen says why); False when the path cannot be looked at (a
    directory closed to us after a privilege drop): it could not be reopened
    there either.
    """
    try:
        at_path = os.stat(path, follow_symlinks=False)
    except PermissionError:
        return False
    except OSError:
        return True
    return not os.path.samestat(at_path, held)


def lines_not_whole(lines: Sequence[bytes], written: int) -> int:
    """How many of ``lines`` are not whole within the first ``written`` bytes.

    A line written but for its newline is whole: the next write starts with
    that newline (see ``_mid_line``), and a reader takes it as it is.
    """
    end = 0
    for index, line in enumerate(lines):
        end += len(line)
        if end > written:
            # Lost from this line on, or from the next one if only its newline is missing.
            return len(lines) - index - (end - 1 == written)
    return 0


class FileSink(_LineSink):
    """An append-only log file that can be reopened by path after a rotation."""

    def __init__(
        self, fd: int, path: str, reopen_path: str | None, owner: int | None = None
    ) -> None:
        super().__init__(fd)
        self.path = path
        #: the path as seen after a chroot; None when the file is outside it.
        self.reopen_path = reopen_path
        #: the uid the daemon drops to, whose file a reopen accepts in a shared sticky directory.
        self.owner = owner
        #: held while the descriptor is swapped or closed (see :meth:`dup`).
        self._swap = threading.Lock()

    def __repr__(self) -> str:
        return f"log_file {self.path}"

    def reopen(self) -> None:
        """Open the path again and close the old descriptor.

        Raises:
            OSError: the new file cannot be opened; the old descriptor is kept.
        """
        if self.reopen_path is None:
            raise OSError(errno.ENOENT, "the log file is outside the chroot", str(self.path))
        # The path may have been swapped for a symlink, FIFO or hard link since
        # the last open (by whoever can write the log directory), or a file
        # another user created there after a rotation: refused the same way as
        # at start, and the caller keeps writing to the old fd.
        # (Loaded since open_file_sink, before any chroot or privilege drop.)
        from ._safeopen import open_append

        new = open_append(self.reopen_path, owner=self.owner)
        # A file that is not new (moved back, or the last run's) may end inside
        # a record cut short: the next one starts on a line of its own.
        ends = ends_inside_line(new)
        with self._swap:
            old, self.fd = self.fd, new
            if ends is None:
                # Not read back (no /proc in a chroot): only a fragment our own
                # failed write left is known, and only in the file reopened in
                # place, not in one rotated away (the new file starts with a record).
                ends = self._mid_line and os.path.samestat(os.fstat(old), os.fstat(new))
            self._mid_line = ends
            os.close(old)

    def dup(self) -> int:
        """A new descriptor of the file now, from any thread (an upgrade hands it on).

        Raises:
            OSError: the file is closed.
        """
        # Without the lock, a reopen on the writer thread could close the
        # descriptor read here, and its number be reused, before the dup.
        with self._swap:
            return os.dup(self.fd)

    def moved(self) -> bool:
        """Whether the path no longer names the open file: renamed (a rotation) or replaced.

        False when the path cannot be looked at (a directory closed to us
        after a privilege drop): the file could not be reopened there either.
        """
        return self.reopen_path is not None and names_another(self.reopen_path, os.fstat(self.fd))

    def close(self) -> None:
        """Close the file."""
        with self._swap:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def open_file_sink(
    path: str, owner: int | None = None, created: CreatedFiles | None = None
) -> FileSink:
    """Open ``path`` for appending, in the launching process.

    Args:
        path: the log file.
        owner: the uid the daemon drops to, if any (its file is accepted at
            every open, also in a shared sticky directory).
        created: where to note the file if this open created it.

    Raises:
        StartupError: ``cannot open log_file PATH: reason``.
    """
    from ._safeopen import open_output

    fd = open_output("log_file", path, owner=owner, created=created)
    return FileSink(fd, path, path, owner)


class StreamSink(_LineSink):
    """An inherited descriptor (fd 2) that is written to but never closed nor reopened."""

    def __repr__(self) -> str:
        return f"fd {self.fd}"

    def reopen(self) -> None:
        """Nothing to reopen: the stream belongs to whoever started us."""

    def look_again(self) -> None:
        """Read back the file now on the descriptor, which may have been put there since.

        A ``stderr`` file moved to the new file after a rotation, or put back
        by an upgrade's successor at its take-over (fd 2 was a pipe until
        then), may end inside a record cut short.
        """
        ends = ends_inside_line(self.fd)
        if ends is not None:
            self._mid_line = ends

    def close(self) -> None:
        """Leave the stream open: it is not ours."""


if TYPE_CHECKING:

    class _Writer(Protocol):
        """The log writer that took the sinks over (``_logs._logwriter.LogWriter``)."""

        def close(self, timeout: float) -> object: ...


class LogTargets:
    """Log sinks opened in the launching process, before the fork and the privilege drop."""

    def __init__(self, file: FileSink | None, syslog: SyslogSink | None) -> None:
        self.file = file
        self.syslog = syslog
        #: a non-blocking descriptor of the terminal on fd 2 (see :meth:`open_echo`).
        self.echo: int | None = None
        #: the writer :func:`start_logging` handed the sinks to; closed with them.
        self.writer: _Writer | None = None
        #: seconds the writer may take to drain its queue at :meth:`close`.
        self.drain_timeout = 5.0
        #: paths as the daemon sees them inside its chroot (see :meth:`enter_chroot`).
        self._jailed: dict[str, str | None] = {}

    def __enter__(self) -> LogTargets:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def enter_chroot(self, root: str, outputs: Iterable[str]) -> None:
        """Record where the log file, a unix syslog socket and ``outputs`` are seen from ``root``.

        Called just before the chroot: their real paths (through any symlink
        on the way) can only be resolved on the host's file system.
        """
        from ._jailpath import seen_from

        # Files are reopened without following a symlink; the socket is connected through one.
        files = list(outputs)
        if self.file is not None:
            files.append(self.file.path)
        self._jailed = {path: seen_from(root, path) for path in files}
        if self.syslog is not None and self.syslog.target.transport == "unix":
            path = self.syslog.target.path
            self._jailed[path] = seen_from(root, path, follow=True)

    def seen(self, path: str) -> str | None:
        """``path`` as the daemon sees it: inside its chroot (None: outside it), else as given."""
        return self._jailed.get(path, path)

    def open_echo(self) -> None:
        """Open the terminal on fd 2 again, write-only and non-blocking, for the echo of warnings.

        A foreground daemon logging to a file or syslog shows its warnings on
        its terminal too (``_logs._logecho``). Written through fd 2, which it
        shares with the shell (where ``O_NONBLOCK`` cannot be set), a terminal
        that stops reading (Ctrl-S, a stalled ssh connection, a pager that
        paused) would hold the log writer thread and with it the log file:
        records lost. Through a descriptor of its own, a line that does not
        fit is skipped instead. Opened before a chroot may hide the terminal
        and before a drop to a user who may not open it; without it (the
        kernel refused), the echo writes to fd 2 as before.
        """
        if self.echo is not None or (self.file is None and self.syslog is None):
            return
        try:
            if not os.isatty(2):
                return
            self.echo = os.open(
                os.ttyname(2), os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            )
        except OSError:
            pass

    def keep_fds(self) -> list[int]:
        """Descriptors that must survive the detach's close-all."""
        fds = []
        if self.file is not None:
            fds.append(self.file.fd)
        if self.syslog is not None and self.syslog.sock is not None:
            fds.append(self.syslog.sock.fileno())
        return fds

    def chown(self, uid: int | None, gid: int | None) -> None:
        """Give the log file to the user the daemon drops to, so it can reopen and rotate it.

        Raises:
            StartupError: the file cannot be given away.
        """
        if self.file is None or (uid is None and gid is None):
            return
        try:
            os.fchown(self.file.fd, -1 if uid is None else uid, -1 if gid is None else gid)
        except OSError as exc:
            raise StartupError(
                f"cannot chown log_file {self.file.path}: {exc.strerror}", option="log_file"
            ) from exc

    def leave_to_daemon(self) -> None:
        """Close the launcher's copies of the sinks (nothing is written from it, nor sent)."""
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.syslog is not None:
            self.syslog.disconnect()
            self.syslog = None

    def close(self) -> None:
        """Drain and stop the writer if logging started, else close the sinks themselves."""
        if self.writer is not None:
            self.writer.close(self.drain_timeout)
        if self.echo is not None:
            os.close(self.echo)
            self.echo = None
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.syslog is not None:
            self.syslog.close()
            self.syslog = None


def open_log_targets(options: Options, created: CreatedFiles | None = None) -> LogTargets:
    """Open ``log_file`` and connect a Unix ``syslog`` socket, failing on the terminal.

    Args:
        options: the daemon's options.
        created: where to note the log file if this open created it.

    Raises:
        StartupError: ``cannot open log_file PATH: reason`` or an unreachable syslog.
    """
    owner = options.identity.uid if options.identity is not None else None
    file = None
    if options.log_file is not None:
        file = open_file_sink(options.log_file, owner, created)
    try:
        syslog = None
        if options.syslog is not None:
            from ._syslogsink import open_syslog_sink  # only a daemon with syslog= loads it

            syslog = open_syslog_sink(options.syslog, owner)
    except StartupError:
        if file is not None:
            file.close()
        raise
    return LogTargets(file, syslog)
