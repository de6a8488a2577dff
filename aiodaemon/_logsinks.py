"""Where log records end up: a file, a stream (fd 2) or syslog.

Sinks are opened in the launching process (so a bad path or an unreachable
``/dev/log`` fails on the terminal, and so they survive a chroot and the
privilege drop) and written to only by the writer thread of
:mod:`aiodaemon._logging`; nothing here is touched by the event loop thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .exceptions import StartupError

if TYPE_CHECKING:
    from ._addresses import SyslogTarget

__all__ = ["FileSink", "StreamSink", "SyslogSink", "open_file_sink", "open_syslog_sink"]

#: facility ``daemon`` (RFC 5424 table 1).
_FACILITY_DAEMON = 3
#: Records waiting while syslog is unreachable; beyond this the oldest are lost (and counted).
_SYSLOG_BACKLOG = 10_000
#: Seconds between attempts to reach a syslog daemon that is down.
_RETRY_INTERVAL = 0.5
_TCP_TIMEOUT = 5.0

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

Record = tuple[int, bytes]


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data``: pipes, FIFOs and terminals may take less per call."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _LineSink:
    """Appends newline-terminated records to a descriptor, surviving failed writes whole.

    A write that fails part-way (a full disk: ENOSPC, EDQUOT, EFBIG) may leave
    a record cut short at the end of the file. The next write then starts with
    a newline, so that fragment is never glued to the next record, and every
    record not written whole is counted in :attr:`lost` for the log writer to
    report once writing works again.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        #: records not written whole, since the start.
        self.lost = 0
        #: the error of the last failed write.
        self.last_error: OSError | None = None
        #: the output ends inside a record cut short by a failed write.
        self._mid_line = False

    def write(self, records: Sequence[Record]) -> None:
        """Append ``records`` in one ``write``: one syscall per batch, not per line.

        Raises:
            OSError: the write failed; the records not written whole are counted as lost.
        """
        lines = [line for _, line in records]
        data = b"".join(lines)
        head = b"\n" if self._mid_line else b""
        view = memoryview(head + data if head else data)
        total = len(view)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            written = total - len(view)
            self.last_error = exc
            self.lost += _cut(lines, written - len(head))
            if written > len(head):
                self._mid_line = not data[: written - len(head)].endswith(b"\n")
            elif head and written:
                self._mid_line = False  # the fragment got its newline, nothing more
            raise
        self._mid_line = False


def _cut(lines: Sequence[bytes], written: int) -> int:
    """How many of ``lines`` are not whole within the first ``written`` bytes."""
    end = 0
    for index, line in enumerate(lines):
        end += len(line)
        if end > written:
            return len(lines) - index
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
        old, self.fd = self.fd, new
        os.close(old)

    def close(self) -> None:
        """Close the file."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_file_sink(path: str, owner: int | None = None) -> FileSink:
    """Open ``path`` for appending, in the launching process.

    Args:
        path: the log file.
        owner: the uid the daemon drops to, if any (its file is accepted at
            every open, also in a shared sticky directory).

    Raises:
        StartupError: ``cannot open log_file PATH: reason``.
    """
    from ._safeopen import open_output

    fd = open_output("log_file", path, owner=owner)
    return FileSink(fd, path, path, owner)


class StreamSink(_LineSink):
    """An inherited descriptor (fd 2) that is written to but never closed nor reopened."""

    def __repr__(self) -> str:
        return f"fd {self.fd}"

    def reopen(self) -> None:
        """Nothing to reopen: the stream belongs to whoever started us."""

    def close(self) -> None:
        """Leave the stream open: it is not ours."""


def _app_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if name in ("__main__.py", "-c", "-m", ""):
        name = os.path.basename(sys.executable)
    # APP-NAME is 1*48PRINTUSASCII (RFC 5424 section 6).
    return re.sub(r"[^\x21-\x7e]", "_", name)[:48] or "-"


class SyslogSink:
    """Syslog messages: RFC 5424 over UDP or TCP (octet counting), syslog(3) format locally.

    A record longer than ``max_message`` is sent as several messages, each
    carrying ``[part@32473 seq="N" of="M" id="ID"]`` structured data, so it is
    never cut short silently (rsyslog's default ``maxMessageSize`` is 8k).
    """

    def __init__(
        self,
        target: SyslogTarget,
        sock: socket.socket | None,
        address: tuple[int, Any] | None,
        max_message: int = 8000,
    ) -> None:
        self.target = target
        self.sock = sock
        #: (family, sockaddr) resolved in the launching process, where DNS still works.
        self.address = address
        self.max_message = max_message
        self.stream = sock is not None and sock.type == socket.SOCK_STREAM
        self.hostname = re.sub(r"[^\x21-\x7e]", "_", socket.gethostname())[:255] or "-"
        self.app_name = _app_name()
        self.pid = os.getpid()
        self.backlog: deque[bytes] = deque()
        self.lost = 0
        self._retry_at = 0.0
        self._next_id = 0

    def __repr__(self) -> str:
        return f"syslog {self.target}"

    def write(self, records: Sequence[Record]) -> None:
        """Send each record as one (or, if too long, several) syslog messages."""
        for severity, line in records:
            self.backlog.extend(self._messages(severity, line.rstrip(b"\n")))
        while len(self.backlog) > _SYSLOG_BACKLOG:
            self.backlog.popleft()
            self.lost += 1
        self._flush()

    def _messages(self, severity: int, body: bytes) -> list[bytes]:
        now = time.time()
        pri = _FACILITY_DAEMON * 8 + severity
        if self.target.transport == "unix":
            # Local daemons (rsyslog's imuxsock, journald) parse the syslog(3)
            # format and mangle RFC 5424 on /dev/log: speak theirs there.
            t = time.localtime(now)
            stamp = f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {time.strftime('%H:%M:%S', t)}"
            head = f"<{pri}>{stamp} {self.app_name}[{self.pid}]: ".encode()
            no_data = b""
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            head = (
                f"<{pri}>1 {stamp}.{int(now % 1 * 1e6):06d}Z {self.hostname} {self.app_name} "
                f"{self.pid} - "
            ).encode()
            no_data = b"- "
        if len(head) + len(no_data) + len(body) <= self.max_message:
            return [head + no_data + body]
        self._next_id += 1
        room = max(self.max_message - len(head) - 64, 256)
        chunks = [body[i : i + room] for i in range(0, len(body), room)]
        return [
            head
            + f'[part@32473 seq="{n}" of="{len(chunks)}" id="{self.pid}-{self._next_id}"] '.encode()
            + chunk
            for n, chunk in enumerate(chunks, 1)
        ]

    def retry(self) -> None:
        """Try again to send what waits for a syslog daemon that was down."""
        self._flush()

    def _flush(self) -> None:
        if self.sock is None and time.monotonic() < self._retry_at:
            return
        for attempt in range(2):
            try:
                if self.sock is None:
                    self._connect()
                elif self.stream and self._peer_closed():
                    raise ConnectionResetError(errno.ECONNRESET, "syslog closed the connection")
                while self.backlog:
                    self._send(self.backlog[0])
                    self.backlog.popleft()
                return
            except OSError:
                # The syslog daemon restarted (a new /dev/log, a closed TCP
                # connection): connect again once now, then every _RETRY_INTERVAL.
                self._disconnect()
                if attempt:
                    self._retry_at = time.monotonic() + _RETRY_INTERVAL

    def _send(self, message: bytes) -> None:
        assert self.sock is not None
        if self.stream:
            # RFC 6587 octet counting: no delimiter can be confused with the payload.
            self.sock.sendall(b"%d " % len(message) + message)
        else:
            self.sock.send(message)

    def _peer_closed(self) -> bool:
        # A syslog server never talks back, so a readable socket means EOF or an
        # error: sending into it would lose the records without an error.
        assert self.sock is not None
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def _connect(self) -> None:
        if self.target.transport == "unix":
            self.sock, self.stream = _connect_unix(self.target.path)
            return
        assert self.address is not None
        family, sockaddr = self.address
        kind = socket.SOCK_STREAM if self.target.transport == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(family, kind)
        try:
            sock.settimeout(_TCP_TIMEOUT)
            sock.connect(sockaddr)
        except OSError:
            sock.close()
            raise
        self.sock, self.stream = sock, kind == socket.SOCK_STREAM

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def reopen(self) -> None:
        """Syslog connections are re-established on failure, not on signals."""

    def close(self) -> None:
        """Send what can still be sent, then close the socket."""
        with contextlib.suppress(OSError):
            self._flush()
        self._disconnect()


def _connect_unix(path: str) -> tuple[socket.socket, bool]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EPROTOTYPE:
            raise
        # Some syslog daemons listen on a stream socket (as the stdlib's SysLogHandler allows).
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return sock, True
    return sock, False


def open_syslog_sink(target: SyslogTarget) -> SyslogSink:
    """Connect (unix) or resolve (udp, tcp) a syslog target in the launching process.

    A Unix socket is connected now so it keeps working after a chroot; a
    network host is resolved now, while ``/etc/resolv.conf`` is still visible,
    and connected by the writer thread.

    Raises:
        StartupError: the socket cannot be reached or the host does not resolve.
    """
    if target.transport == "unix":
        try:
            sock, _ = _connect_unix(target.path)
        except OSError as exc:
            raise StartupError(
                f"cannot connect to syslog {target}: {exc.strerror or exc}", option="syslog"
            ) from exc
        # Up to the kernel's datagram limit; long records are split by SyslogSink.
        return SyslogSink(target, sock, None)
    kind = socket.SOCK_STREAM if target.transport == "tcp" else socket.SOCK_DGRAM
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=kind)
    except OSError as exc:
        raise StartupError(
            f"cannot resolve syslog {target}: {exc.strerror or exc}", option="syslog"
        ) from exc
    family, _, _, _, sockaddr = infos[0]
    # UDP datagrams above ~1400 bytes fragment; 8000 still arrives whole on loopback
    # and on most LANs, and RFC 5426 receivers must accept 2048 at least.
    return SyslogSink(target, None, (family, sockaddr), 8000)
