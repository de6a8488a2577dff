"""Syslog as a log sink: RFC 5424 over UDP or TCP, the syslog(3) format on a Unix socket.

Opened in the launching process (an unreachable or untrusted socket fails on
the terminal) and written to only by the log writer thread. Records wait in
a bounded backlog while the collector is down, and are counted when lost.

Every send is non-blocking: a collector that stops reading (journald or
rsyslog stuck on a disk, a remote one overloaded) fills the socket's buffer,
and a blocking send would then hold the writer thread, and with it the log
file and every other sink, until the loop's queue overflowed. Its records
wait in the backlog instead, like those of a collector that is down.
"""

from __future__ import annotations

import calendar
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

from ..exceptions import StartupError
from ._tcpunsent import SentFrames

if TYPE_CHECKING:
    from ._addresses import SyslogTarget
    from ._logsinks import Record

__all__ = ["SyslogSink", "open_syslog_sink"]

#: facility ``daemon`` (RFC 5424 table 1).
_FACILITY_DAEMON = 3
#: Records waiting while syslog is unreachable or not reading; beyond this the oldest
#: are lost (and counted). As many as the writer's queue holds: a burst that a
#: blocking send would have left in that queue waits here instead.
_SYSLOG_BACKLOG = 32_768
#: ... and at most this many bytes of them: 32,768 messages of up to 8,000 bytes
#: (a traceback's, a long record's parts) would hold 256 MiB through an outage.
_SYSLOG_BACKLOG_BYTES = 16 << 20
#: Seconds between attempts to reach a syslog daemon that is down.
_RETRY_INTERVAL = 0.5
_TCP_TIMEOUT = 5.0
#: Seconds the last attempt at exit waits for a collector that reads slowly.
_EXIT_PATIENCE = 1.0
#: Seconds a flush waits for a new TCP connection before leaving it under way: a
#: collector whose host drops the handshake (a firewall, a host that is down)
#: must not hold the writer thread, and with it the log file, for _TCP_TIMEOUT.
_CONNECT_WAIT = 0.05
#: Seconds a datagram sent on a new UDP socket waits for the ICMP "port
#: unreachable" that says nobody listens (loopback answers at once; a LAN in
#: well under a millisecond; beyond that a refusal surfaces at a later send).
_UDP_PROBE = 0.2
#: The most bytes of framed messages one ``send`` on a stream socket takes.
_STREAM_BATCH = 64 << 10

#: The start of a JSON log line: its own ``timestamp`` (group 1), whose whole
#: second (group 2) the syslog header repeats.
_JSON_STAMP = re.compile(rb'\{"timestamp":"((\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d))\.\d{6}Z"')

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


#: The module of the TARGET the CLI runs (see :func:`name_after_target`).
_target_module: str | None = None


def name_after_target(target: str) -> None:
    """Tag the syslog messages of the daemon the CLI runs with its TARGET's module.

    Told by the CLI, which parsed the command line: ``echo`` of ``echo:main``
    and of ``echo`` alone (``echo:main``) wherever it stands among the options.
    """
    global _target_module
    _target_module = target.partition(":")[0]


def _app_name(argv: Sequence[str] | None = None) -> str:
    """The syslog APP-NAME (the tag): what an operator filters a service's messages by.

    ``python app.py``: ``app.py``; ``python -m pkg``: ``pkg``; the CLI
    (``aiodaemon run echo:main``, ``python -m aiodaemon run echo``): the
    TARGET's module, ``echo``, not ``aiodaemon`` for every service on the host.
    """
    argv = sys.argv if argv is None else argv
    path = argv[0] if argv and argv[0] else ""
    name = os.path.basename(path)
    if name == "__main__.py":
        # `python -m pkg` runs pkg/__main__.py: the package says what runs.
        name = os.path.basename(os.path.dirname(path))
    if _target_module is not None:
        name = _target_module
    if name in ("", "-c", "-m"):
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
        owner: int | None = None,
    ) -> None:
        self.target = target
        #: the Unix socket's path for a reconnect, as the daemon sees it (after a chroot).
        self.path = target.path
        self.sock = sock
        if sock is not None:
            sock.setblocking(False)
        #: (family, sockaddr) resolved in the launching process, where DNS still works.
        self.address = address
        self.max_message = max_message
        self.stream = sock is not None and sock.type == socket.SOCK_STREAM
        self.hostname = re.sub(r"[^\x21-\x7e]", "_", socket.gethostname())[:255] or "-"
        self.app_name = _app_name()
        self.pid = os.getpid()
        self.backlog: deque[bytes] = deque()
        #: the backlog's size in bytes.
        self._backlog_bytes = 0
        self.lost = 0
        #: the uid the daemon drops to: its socket is trusted in a shared sticky directory.
        self.owner = owner
        #: why the path was not trusted at the last connect (None: it was, or not tried).
        self.refused: str | None = None
        self._refusal_told: str | None = None
        self._retry_at = 0.0
        #: the last JSON line's whole second and its local time (see _local_stamp).
        self._local_second: tuple[bytes, time.struct_time] = (b"", time.localtime(0))
        self._next_id = 0
        #: a TCP connect under way and when it is given up, None when none is.
        self._connecting: tuple[socket.socket, float] | None = None
        #: bytes of the backlog's first message a stream socket has taken (a partial send).
        self._head_sent = 0
        #: until when a new UDP socket's first datagram, sent and still first in
        #: line, waits for a refusal before the rest follow (see _probe_done).
        self._probe_until: float | None = None
        #: whether the last flush stopped at a full socket buffer (the collector is slow).
        self.blocked = False
        #: the frames a TCP connection took whole and may not have sent yet (see _tcpunsent).
        self._sent = SentFrames() if target.transport == "tcp" else None

    def __repr__(self) -> str:
        return f"syslog {self.target}"

    def write(self, records: Sequence[Record]) -> None:
        """Send each record as one (or, if too long, several) syslog messages."""
        for severity, line in records:
            for message in self._messages(severity, line.rstrip(b"\n")):
                self.backlog.append(message)
                self._backlog_bytes += len(message)
        # The limit is on what still waits after this attempt: a batch larger
        # than the backlog (the writer takes up to 16,384 records at once) goes
        # to a collector that is up, none of it lost.
        self._flush()
        while len(self.backlog) > _SYSLOG_BACKLOG or self._backlog_bytes > _SYSLOG_BACKLOG_BYTES:
            if self._head_sent or self._probe_until is not None:
                # The first message is partly sent (its rest must come next),
                # or sent and waiting to be known delivered.
                head = self.backlog.popleft()
                self._backlog_bytes -= len(self.backlog[0])
                self.backlog[0] = head
            else:
                self._backlog_bytes -= len(self.backlog.popleft())
            self.lost += 1

    def _messages(self, severity: int, body: bytes) -> list[bytes]:
        # The header tells when the record was made, as its JSON line does: the
        # writer thread sends it later (after a burst, a stall, an outage).
        own = _JSON_STAMP.match(body)
        pri = _FACILITY_DAEMON * 8 + severity
        if self.target.transport == "unix":
            # Local daemons (rsyslog's imuxsock, journald) parse the syslog(3)
            # format and mangle RFC 5424 on /dev/log: speak theirs there.
            head = f"<{pri}>{self._local_stamp(own)} {self.app_name}[{self.pid}]: ".encode()
            no_data = b""
        else:
            if own is not None:
                stamp = own[0][14:-1].decode()
            else:
                seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
                stamp = f"{stamp}.{nanos // 1000:06d}Z"
            head = f"<{pri}>1 {stamp} {self.hostname} {self.app_name} {self.pid} - ".encode()
            no_data = b"- "
        if len(head) + len(no_data) + len(body) <= self.max_message:
            return [head + no_data + body]
        self._next_id += 1
        room = max(self.max_message - len(head) - 64, 256)
        chunks = _utf8_chunks(body, room)
        return [
            head
            + f'[part@32473 seq="{n}" of="{len(chunks)}" id="{self.pid}-{self._next_id}"] '.encode()
            + chunk
            for n, chunk in enumerate(chunks, 1)
        ]

    def retry(self) -> None:
        """Try again to send what waits for a syslog daemon that was down."""
        self._flush()

    def _local_stamp(self, own: re.Match[bytes] | None) -> str:
        """syslog(3)'s ``Mmm dd HH:MM:SS`` in local time, of the JSON line's own second if any."""
        if own is None:
            t = time.localtime()
        elif own[1] == self._local_second[0]:
            t = self._local_second[1]
        else:
            # Once a second at most: the whole second in UTC, back to local time.
            t = time.localtime(calendar.timegm(tuple(int(field) for field in own.groups()[1:])))
            self._local_second = (own[1], t)
        return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {time.strftime('%H:%M:%S', t)}"

    def _flush(self, patience: float = 0.0) -> None:
        """Send what waits; for up to ``patience`` seconds while the socket's buffer is full."""
        if self.sock is None and self._connecting is None and time.monotonic() < self._retry_at:
            return
        self.blocked = False
        deadline = time.monotonic() + patience
        for attempt in range(2):
            try:
                probe = False
                if self.sock is None:
                    if not self._connect():
                        return  # a TCP connect still under way: the records wait for it
                    self.refused = self._refusal_told = None
                    probe = self.target.transport == "udp"
                elif self.stream and self._peer_closed():
                    raise ConnectionResetError(errno.ECONNRESET, "syslog closed the connection")
                while self.backlog:
                    if self._probe_until is not None:
                        # The first datagram, sent, waits to be known delivered:
                        # waited for only by the exit's last attempt. The writer
                        # thread writes the log file too (a collector that is up
                        # never refuses) and comes back within _BLOCKED_RETRY.
                        if not self._probe_done(deadline):
                            self.blocked = True
                            return
                        self._backlog_bytes -= len(self.backlog.popleft())
                        continue
                    if not (self._send_frames() if self.stream else self._send(self.backlog[0])):
                        if not self._writable(deadline):
                            self.blocked = True
                            return
                        continue
                    if self.stream:
                        continue  # what went whole is off the backlog already
                    if probe:
                        self._probe_until = time.monotonic() + _UDP_PROBE
                        probe = False
                        continue
                    self._backlog_bytes -= len(self.backlog.popleft())
                return
            except OSError as exc:
                # Loaded by open_syslog_sink, before any chroot or privilege drop.
                from ._syslogsocket import is_refusal

                if self._sent is not None and self.sock is not None:
                    # The collector reset or closed the connection: what our
                    # kernel had not sent yet will never arrive.
                    self.lost += self._sent.lost(self.sock, self._head_sent)
                # The syslog daemon restarted (a new /dev/log, a closed TCP
                # connection, a refused datagram): connect again once now, then
                # every _RETRY_INTERVAL. The records wait in the backlog; so do
                # they while the path is untrusted (the writer reports it).
                self._disconnect()
                if is_refusal(exc):
                    self.refused = str(exc)
                if attempt or is_refusal(exc):
                    self._retry_at = time.monotonic() + _RETRY_INTERVAL
                    return

    def take_refusal(self) -> str | None:
        """Why the syslog path is refused, once per new reason (for the writer to report)."""
        if self.refused is None or self.refused == self._refusal_told:
            return None
        self._refusal_told = self.refused
        return self.refused

    def _probe_done(self, deadline: float) -> bool:
        """Whether the probing datagram is through: no refusal came within _UDP_PROBE.

        Waits for a refusal until ``deadline`` at most (the exit's last attempt
        has patience; the writer's flushes have none).

        Raises:
            OSError: the datagram was refused (it stays first in line).
        """
        assert self.sock is not None
        assert self._probe_until is not None
        wait = min(self._probe_until, deadline) - time.monotonic()
        if wait > 0:
            poller = select.poll()
            poller.register(self.sock, select.POLLERR)
            poller.poll(wait * 1000)
        _check_delivery(self.sock)
        if time.monotonic() < self._probe_until:
            return False
        self._probe_until = None
        return True

    def _frame(self, message: bytes) -> bytes:
        """``message`` as it goes over a stream socket."""
        if self.target.transport == "unix":
            # A stream /dev/log (syslog-ng's unix-stream()) is read up to a
            # NUL or a newline, as syslog(3) sends there; it knows no length
            # prefix. A record holds no NUL (JSON and console lines escape
            # it), but a console line's traceback has line breaks: written
            # as rsyslog shows them, or each would begin another message.
            return message.replace(b"\n", b"#012") + b"\0"
        # RFC 6587 octet counting: no delimiter can be confused with the payload.
        return b"%d " % len(message) + message

    def _send_frames(self) -> bool:
        """Send the backlog's first messages, framed, in one ``send`` of up to _STREAM_BATCH bytes.

        Each message sent whole leaves the backlog. One send per message kept
        the writer thread slower than a burst of logging: its queue overflowed,
        and the log file lost records with the collector. A partial send
        leaves the rest of its message for the next try (``_head_sent``):
        nothing else may be sent in between, or the frame would be corrupt.

        Returns:
            False if the socket took nothing (its buffer is full).
        """
        assert self.sock is not None
        frames = []
        size = 0
        for message in self.backlog:
            frames.append(self._frame(message))
            size += len(frames[-1])
            if size >= _STREAM_BATCH:
                break
        try:
            sent = self.sock.send(memoryview(b"".join(frames))[self._head_sent :])
        except BlockingIOError:
            return False
        done = self._head_sent + sent
        for framed in frames:
            if done < len(framed):
                break
            done -= len(framed)
            self._backlog_bytes -= len(self.backlog.popleft())
            if self._sent is not None:
                self._sent.add(len(framed))
        self._head_sent = done
        if self._sent is not None:
            self._sent.trim(self.sock, done)
        return True

    def _send(self, message: bytes) -> bool:
        """Send one datagram; False if the socket's buffer is full."""
        assert self.sock is not None
        try:
            self.sock.send(message)
        except BlockingIOError:
            return False
        except ConnectionRefusedError:
            if self.target.transport != "udp":
                raise
            # An ICMP "port unreachable" for an earlier datagram, which is lost
            # (how many went before this one is unknown: at least one). This
            # one was not sent and stays at the head of the backlog.
            self.lost += 1
            raise
        if self.target.transport == "udp":
            _check_delivery(self.sock)
        return True

    def _writable(self, deadline: float) -> bool:
        """Wait until the socket takes more, at most until ``deadline``; whether it does."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        assert self.sock is not None
        poller = select.poll()
        poller.register(self.sock, select.POLLOUT)
        return bool(poller.poll(left * 1000))

    def _peer_closed(self) -> bool:
        # A syslog server never talks back, so a readable socket means EOF or an
        # error: sending into it would lose the records without an error.
        # poll(), not select(): a busy daemon's socket may be past fd 1023,
        # which select() refuses (ValueError), and the writer lost syslog for good.
        assert self.sock is not None
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def _connect(self) -> bool:
        """Connect, or go on with a TCP connect under way; False while it still is.

        Raises:
            OSError: the connection failed (or got no answer within _TCP_TIMEOUT).
        """
        if self.target.transport == "unix":
            # Checked at every reconnect, not only at start: the path may now
            # be another user's socket or a symlink to one (_syslogsocket).
            from ._syslogsocket import connect_unix

            self.sock, self.stream = connect_unix(self.path, self.owner)
            self.sock.setblocking(False)
            return True
        assert self.address is not None
        family, sockaddr = self.address
        wait = 0.0
        if self._connecting is None:
            if self.target.transport == "udp":
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.settimeout(_TCP_TIMEOUT)
                    sock.connect(sockaddr)  # no handshake: at once
                except OSError:
                    sock.close()
                    raise
                sock.setblocking(False)
                self.sock, self.stream = sock, False
                return True
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            error = sock.connect_ex(sockaddr)
            if error not in (0, errno.EINPROGRESS):
                sock.close()
                raise OSError(error, os.strerror(error))
            self._connecting = sock, time.monotonic() + _TCP_TIMEOUT
            wait = _CONNECT_WAIT
        sock, deadline = self._connecting
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        if not poller.poll(wait * 1000):
            if time.monotonic() < deadline:
                return False
            self._connecting = None
            sock.close()
            raise TimeoutError(errno.ETIMEDOUT, f"no answer within {_TCP_TIMEOUT:g} s")
        self._connecting = None
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            sock.close()
            raise OSError(error, os.strerror(error))
        self.sock, self.stream = sock, True
        return True

    def disconnect(self) -> None:
        """Close the socket, sending nothing (a copy the launcher has no use for)."""
        self._disconnect()

    def _disconnect(self) -> None:
        # A message cut short goes whole over the next connection: the
        # collector drops the incomplete frame with the old one.
        self._head_sent = 0
        self._probe_until = None
        if self._sent is not None:
            self._sent.clear()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self._connecting is not None:
            self._connecting[0].close()
            self._connecting = None

    def forked(self, pid: int) -> None:
        """In a child forked after logging started: its own pid, none of the parent's messages."""
        self.pid = pid
        # What waits (for a collector that is down, or a send in progress at
        # the fork) is the parent's to send: sent from here too, it would
        # arrive twice.
        self.backlog.clear()
        self._backlog_bytes = 0
        self._probe_until = None
        if self.stream:
            # Both processes writing one stream would cut into each other's
            # frames (a send may now be partial): this one gets its own
            # connection. Closing our copy leaves the parent's open.
            self._disconnect()
        if self._connecting is not None:
            # The parent's to finish; this process connects on its own if it logs.
            self._connecting[0].close()
            self._connecting = None

    def give_up(self) -> None:
        """At exit: one last attempt to send what waits; what still waits is counted as lost."""
        # The collector may be back already; if not, nothing will send these
        # messages: count them, so the writer says so in the other sinks.
        self._retry_at = 0.0
        with contextlib.suppress(OSError):
            self._flush(patience=_EXIT_PATIENCE)
        self.lost += len(self.backlog)
        self.backlog.clear()
        self._backlog_bytes = 0
        self._head_sent = 0

    def reopen(self) -> None:
        """Syslog connections are re-established on failure, not on signals."""

    def close(self) -> None:
        """Send what can still be sent, then close the socket."""
        # One last attempt even within the retry interval: the collector may
        # be back already, and what waits would otherwise go with the process.
        self._retry_at = 0.0
        with contextlib.suppress(OSError):
            self._flush()
        self._disconnect()


def _utf8_chunks(body: bytes, room: int) -> list[bytes]:
    """``body`` (UTF-8) in pieces of at most ``room`` bytes, never one cut inside a character.

    Each piece is a message of its own: one that is not UTF-8 is a blob to
    journald (``[N blob data]``) and garbage to a reader decoding lines.
    """
    chunks = []
    start = 0
    while start < len(body):
        end = cut = start + room
        # Back off the continuation bytes (0b10xxxxxx) of a character the cut
        # would split: a character has at most three, so bytes that are not
        # UTF-8 after all are still cut, never looped on.
        while end < len(body) and cut - end < 3 and body[end] & 0xC0 == 0x80:
            end -= 1
        chunks.append(body[start:end])
        start = end
    return chunks


def _check_delivery(sock: socket.socket) -> None:
    """Raise ``ConnectionRefusedError`` if a datagram sent was refused.

    A connected UDP socket learns of an ICMP "port unreachable" only as a
    pending error: read it now, so the refused datagram stays queued rather
    than the next one failing in its place. The first datagram on a new
    socket stays first in line for up to _UDP_PROBE (see ``_probe_done``),
    so a collector still down is not taken for one that is back.
    """
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))


def open_syslog_sink(target: SyslogTarget, owner: int | None = None) -> SyslogSink:
    """Connect (unix) or resolve (udp, tcp) a syslog target in the launching process.

    A Unix socket is connected now so it keeps working after a chroot; a
    network host is resolved now, while ``/etc/resolv.conf`` is still visible,
    and connected by the writer thread.

    Args:
        target: the syslog target.
        owner: the uid the daemon drops to, if any (its socket is trusted in a
            shared sticky directory, at start and at every reconnect).

    Raises:
        StartupError: the socket cannot be reached or is not trusted, or the
            host does not resolve.
    """
    # Imported here, not at the top: a daemon without syslog never loads it, and
    # one with syslog has it loaded before a chroot hides the package's files.
    from ._syslogsocket import connect_unix

    if target.transport == "unix":
        try:
            sock, _ = connect_unix(target.path, owner)
        except OSError as exc:
            raise StartupError(
                f"cannot connect to syslog {target}: {exc.strerror or exc}", option="syslog"
            ) from exc
        # Up to the kernel's datagram limit; long records are split by SyslogSink.
        return SyslogSink(target, sock, None, owner=owner)
    kind = socket.SOCK_STREAM if target.transport == "tcp" else socket.SOCK_DGRAM
    try:
        from ._addresses import encoded_host

        infos = socket.getaddrinfo(encoded_host(target.host), target.port, type=kind)
    except OSError as exc:
        raise StartupError(
            f"cannot resolve syslog {target}: {exc.strerror or exc}", option="syslog"
        ) from exc
    family, _, _, _, sockaddr = infos[0]
    # UDP datagrams above ~1400 bytes fragment; 8000 still arrives whole on loopback
    # and on most LANs, and RFC 5426 receivers must accept 2048 at least.
    return SyslogSink(target, None, (family, sockaddr), 8000, owner)
