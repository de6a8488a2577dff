"""The records a TCP connection to syslog had not sent yet when it ended: lost, and counted.

Syslog over TCP (RFC 6587) has no acknowledgements: a collector that dies or
closes the connection loses what was on its way, and nothing says so. One
part of it is known here: what the daemon's own kernel still held unsent (a
collector that reads slower than the daemon logs leaves up to its send buffer,
a few MiB, waiting there). A reset purges it, and a collector that closed its
end refuses it. ``SIOCOUTQNSD`` tells how many bytes that is, also after the
reset, and the sizes of the last frames sent tell how many records those
bytes held. What the collector's kernel had received but the collector not
read yet, and what was on the wire, cannot be told from here: lost uncounted.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from collections import deque

__all__ = ["SentFrames"]

#: ``ioctl`` of <linux/sockios.h>: bytes of a TCP socket's send queue not sent yet.
_SIOCOUTQNSD = 0x894B


def _unsent(sock: socket.socket) -> int:
    """Bytes written to ``sock`` that its kernel has not sent (still known after a reset).

    Raises:
        OSError: the kernel cannot tell (before Linux 2.6.38, or not a TCP socket).
    """
    answer = fcntl.ioctl(sock.fileno(), _SIOCOUTQNSD, b"\0\0\0\0")
    return int(struct.unpack("i", answer)[0])


class SentFrames:
    """The sizes of the last frames a TCP connection took whole: those its kernel may not have sent.

    Each size is of one syslog message, framed: how many records a number of
    unsent bytes held is then a count, not a guess.
    """

    def __init__(self) -> None:
        self._sizes: deque[int] = deque()
        self._bytes = 0
        #: the kernel answers ``SIOCOUTQNSD`` (until it once did not).
        self.known = True

    def add(self, size: int) -> None:
        """Note a frame of ``size`` bytes the socket took whole."""
        if self.known:
            self._sizes.append(size)
            self._bytes += size

    def trim(self, sock: socket.socket, partial: int) -> None:
        """Forget the frames the kernel has sent: keep no more than it may still hold.

        Args:
            sock: the connection.
            partial: bytes of a frame cut short by the last send, written after
                every frame noted (the next connection sends it again, whole).
        """
        if not self._sizes:
            return
        try:
            unsent = _unsent(sock) - partial
        except OSError:
            self.known = False
            self.clear()
            return
        while self._sizes and self._bytes - self._sizes[0] >= unsent:
            self._bytes -= self._sizes.popleft()

    def lost(self, sock: socket.socket, partial: int) -> int:
        """How many of the frames were not sent whole when the connection ended; forgets them all.

        Args:
            sock: the connection, reset or closed by the collector.
            partial: as for :meth:`trim`.
        """
        try:
            unsent = _unsent(sock) - partial
        except OSError:
            unsent = 0
        count = 0
        while unsent > 0 and self._sizes:
            unsent -= self._sizes.pop()
            count += 1
        self.clear()
        return count

    def clear(self) -> None:
        """Forget every frame (a connection closed, or another one opened)."""
        self._sizes.clear()
        self._bytes = 0
