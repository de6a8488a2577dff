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
