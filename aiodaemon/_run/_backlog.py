"""A server's listen backlog at a stop: its connections are served, not reset.

A connection whose handshake the kernel completed waits in the listening
socket's accept queue until the program accepts it; its client already
believes it is connected and sends its request. Closing the listening socket
then resets it: neither refused (the client would know to retry elsewhere)
nor served. So, right before a server of ``ctx.start_server`` closes its
listener, :meth:`ServerBacklog.take` accepts, without blocking, everything
the queue holds and serves it like any connection, and the server closes in
the same step: no loop turn in between lets another one queue up.

Not for a listener handed to an upgrade's successor: the successor accepts
from the same queue, and serves what is in it.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
from collections.abc import Callable
from typing import Any

import structlog

__all__ = ["ServerBacklog"]

_log = structlog.get_logger("aiodaemon")

#: Most connections taken at one stop: the loop ends even under a connect flood
#: that keeps the queue from emptying (the kernel's own cap is net.core.somaxconn).
_MOST_TAKEN = 2 * max(socket.SOMAXCONN, 4096)

#: ``loop.create_server`` options that apply to an accepted connection too.
_CONNECTION_OPTIONS = ("ssl", "ssl_handshake_timeout", "ssl_shutdown_timeout")


class ServerBacklog:
    """What serving one server's pending connections needs: its socket, its protocol factory."""

    def __init__(
        self,
        server: asyncio.Server,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        options: dict[str, Any],
    ) -> None:
        self.server = server
        self._sock = sock
        self._factory = factory
        self._options = {k: options[k] for k in _CONNECTION_OPTIONS if options.get(k) is not None}
        #: connections being set up (a TLS handshake), kept from the garbage collector.
        self._starting: set[asyncio.Future[Any]] = set()

    def take(self) -> int:
        """Accept every connection waiting in the queue and serve it; how many were taken.

        Synchronous on purpose: the caller closes the server right after, and
        an ``await`` in between would let new connections queue, to be reset.
        The backlog is left as it is rather than shrunk first (``listen(0)``):
        a full queue makes Linux drop the last ACK of a handshake, whose
        client then believes it is connected, sends its request and is reset
        when the listener closes; with the queue as it was, such a connection
        is queued, and taken here.
        """
        if not self.server.is_serving() or self._sock.fileno() < 0:
            return 0  # never started, or closed by the program itself
        taken = _accept_pending(self._sock)
        loop = asyncio.get_running_loop()
        for conn in taken:
            # Made now, not in the task: the shutdown's wait for connections
            # that have not reached their handler yet counts it at once.
            protocol = self._factory()
            made = loop.connect_accepted_socket(_given(protocol), conn, **self._options)
            task = asyncio.ensure_future(made)
            self._starting.add(task)
            task.add_done_callback(functools.partial(self._started, conn))
        return len(taken)

    def _started(self, conn: socket.socket, task: asyncio.Future[Any]) -> None:
        self._starting.discard(task)
        if task.cancelled():
            conn.close()
            return
        exc = task.exception()
        if exc is not None:
            # A failed TLS handshake, a client gone: the client's business.
            _log.debug("connection lost", error=f"{type(exc).__name__}: {exc}")
            conn.close()


def _given(protocol: asyncio.Protocol) -> Callable[[], asyncio.Protocol]:
    """A protocol factory that returns ``protocol``, made already."""
    return lambda: protocol


def _accept_pending(sock: socket.socket) -> list[socket.socket]:
    """Accept without blocking until the queue is empty (or :data:`_MOST_TAKEN`)."""
    sock.setblocking(False)
    taken: list[socket.socket] = []
    while len(taken) < _MOST_TAKEN:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            break
        except ConnectionAbortedError:
            continue  # reset by its client while queued: the next one
        except OSError as exc:
            # Out of descriptors (EMFILE, ENFILE) or the like: the rest are
            # reset as before, and the log says why.
            _log.warning(
                "pending connections not accepted",
                error=f"{errno.errorcode.get(exc.errno or 0, 'OSError')}: {exc.strerror}",
                accepted=len(taken),
            )
            break
        taken.append(conn)
    return taken
