"""A new UDP socket's first datagram waits for a refusal, without holding up the log file.

The first datagram after a (re)connect stays first in line for up to 0.2 s, in
case an ICMP "port unreachable" says the collector is still down. That wait
was a ``poll`` on the writer thread, which writes the log file too: with a
healthy collector every start (and every recovery) held the file for 0.2 s,
and a burst then overflowed the writer's queue, records lost from the file.
"""

from __future__ import annotations

import socket

from aiodaemon._prefork._addresses import parse_syslog
from aiodaemon._prefork._syslogsink import open_syslog_sink

from .support import wait_for


def test_the_first_datagram_is_sent_and_the_flush_returns_at_once() -> None:
    """write() sends the probe and returns, the rest waiting; a later retry sends them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(10)
        target = parse_syslog(f"udp://127.0.0.1:{collector.getsockname()[1]}")
        assert target is not None
        sink = open_syslog_sink(target)
        try:
            sink.write([(6, b'{"event":"first"}\n'), (6, b'{"event":"second"}\n')])
            # Back to the writer (and the log file) before the probe's time is over:
            # the first datagram is out, still first in line; the second waits.
            assert sink.blocked
            assert len(sink.backlog) == 2
            assert b'{"event":"first"}' in collector.recv(65536)

            def drained() -> bool:
                sink.retry()  # what the writer does every _BLOCKED_RETRY meanwhile
                return not sink.backlog

            wait_for(drained, 10, "the probe's end and the rest sent")
            assert b'{"event":"second"}' in collector.recv(65536)
            # Sent once each: the probe is not sent again once confirmed.
            collector.settimeout(0.2)
            try:
                extra = collector.recv(65536)
            except TimeoutError:
                extra = b""
            assert extra == b""
            assert sink.lost == 0
        finally:
            sink.close()


def _frames(data: bytes) -> list[bytes]:
    """The messages of an RFC 6587 octet-counted stream (each ``LEN SP MSG``)."""
    messages = []
    while data:
        length, _, rest = data.partition(b" ")
        messages.append(rest[: int(length)])
        data = rest[int(length) :]
    return messages


def test_frames_sent_in_batches_arrive_whole_and_in_order_through_partial_sends() -> None:
    """Over TCP many messages go in one send; a full socket cuts one anywhere, none is corrupt.

    One send per message kept the writer thread slower than a burst: its
    queue overflowed and the log file lost records along with the collector.
    """
    with socket.socket() as server:
        # A small receive buffer, read only later: sends are cut at any byte.
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        server.bind(("127.0.0.1", 0))
        server.listen()
        target = parse_syslog(f"tcp://127.0.0.1:{server.getsockname()[1]}")
        assert target is not None
        sink = open_syslog_sink(target)
        try:
            count = 3000
            line = b'{"event":"b","i":%d,"pad":"%s"}\n'
            sink.write([(6, line % (i, b"x" * 300)) for i in range(count)])
            connection, _ = server.accept()
            with connection:
                connection.setblocking(False)
                received = bytearray()

                def drained() -> bool:
                    sink.retry()  # what the writer does meanwhile
                    try:
                        while chunk := connection.recv(1 << 16):
                            received.extend(chunk)
                    except BlockingIOError:
                        pass
                    return not sink.backlog and len(_frames(bytes(received))) >= count

                wait_for(drained, 30, "every message at the collector")
        finally:
            sink.close()
    bodies = _frames(bytes(received))
    numbers = [int(body.split(b'"i":')[1].split(b",")[0]) for body in bodies]
    assert numbers == list(range(count))
    assert all(body.endswith(b'"pad":"' + b"x" * 300 + b'"}') for body in bodies)
    assert sink.lost == 0
