"""Serving: servers started through the context, their connections, and tracked objects.

:meth:`Serving.start_server` is ``asyncio.start_server`` on a framework socket,
with two differences that make a graceful stop the default:

* the listen backlog stays the framework's (``asyncio`` re-``listen()``s a
  passed socket with a backlog of 100, silently shrinking SOMAXCONN);
* every connection's handler is tracked, so the shutdown sequence can stop
  accepting, let requests in flight finish, and only then run the hooks.

A connection whose handler waits for data with nothing buffered, having
written since the client's last bytes arrived, is *idle*: it answered, and
waits for the next request (a keep-alive client between two requests). Once
the server stops accepting, such a read returns end-of-stream, as if the client
had closed: an idle keep-alive connection ends at once instead of holding the
shutdown until its deadline. One whose client sent bytes after its last write
is in the middle of a request (its body still on its way, an upload read to
its end): it is served to the end, as a request already received is. This is
Go's ``http.Server.Shutdown`` rule (idle once a response is written, active
from the next request's first byte), at the level of the byte stream.

The shutdown sequence calls :meth:`Serving.stop_accepting` after the drain
delay, then :meth:`Serving.wait_closed`. A hand-off that must stop accepting at
once (``aiodaemon upgrade``: the successor already accepts) calls
:meth:`Serving.stop_accepting` itself; it is idempotent.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import socket
import time
import weakref
from asyncio import base_events
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, SupportsIndex, cast

import structlog

from ._backlog import ServerBacklog

__all__ = ["ClientConnected", "Serving"]

_log = structlog.get_logger("aiodaemon")

#: ``asyncio.start_server``'s own default read buffer limit.
_DEFAULT_LIMIT = 2**16
#: Tracked objects held before track() first looks for closed ones to forget.
_PRUNE_MIN = 64

#: What ``start_server`` calls for each connection: a coroutine function or a plain one.
ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]

#: Seconds a connection accepted just before the stop has to send its first bytes.
_FIRST_REQUEST_GRACE = 0.5

#: Longest wait for cancelled handlers to unwind, once their time is up.
_CANCEL_GRACE = 1.0


class _DrainingReader(asyncio.StreamReader):
    """A StreamReader that reads end-of-stream when idle once its server drains.

    Until then it is asyncio's StreamReader unchanged, at its cost: the draining
    behaviour is attached to the instance only by :meth:`drain`.
    """

    # asyncio.StreamReader's own state, which typeshed does not declare.
    _buffer: bytearray
    _eof: bool
    _waiter: asyncio.Future[None] | None
    _transport: asyncio.BaseTransport | None

    _draining = False
    #: whether any byte arrived: a connection that has sent nothing yet is not
    #: idle between requests, its first request may still be on its way.
    _received = False
    #: whether the handler wrote since the client's last bytes arrived (set by
    #: :class:`_AnsweringWriter`, cleared by :class:`_NotingProtocol`): a read
    #: that waits then waits for a next request, not for the rest of this one.
    _answered = True

    def first_bytes(self) -> None:
        """The client's first bytes are arriving (told by :class:`_NotingProtocol`)."""
        self._received = True
        if self._draining:
            self._wait_for_data = self._wait_or_end

    def drain(self) -> None:
        """From now on an idle read ends the stream; end it now if a read already waits."""
        if self._draining:
            return
        self._draining = True
        if not self._received:
            # Accepted just before the stop (an upgrade's cut-over, say): the
            # client has sent or is sending its request; give it a moment.
            asyncio.get_running_loop().call_later(_FIRST_REQUEST_GRACE, self._grace_over)
            return
        self._grace_over()

    def _grace_over(self) -> None:
        self._wait_for_data = self._wait_or_end
        if self._waiter is not None and self._idle():
            self._end()

    def _idle(self) -> bool:
        return self._answered and not self._buffer and not self._eof

    def _end(self) -> None:
        # Bytes that arrive later belong to a request nobody will answer:
        # stop reading them, and drop any already on their way (feed_data
        # after feed_eof would fail an assertion in the protocol).
        self.feed_data = _discard  # type: ignore[method-assign]
        # uvloop's transports implement asyncio's without subclassing them.
        transport = cast(asyncio.ReadTransport | None, self._transport)
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
        self.feed_eof()

    async def _wait_or_end(self, func_name: str) -> None:
        if self._idle():
            self._end()
            return
        await asyncio.StreamReader._wait_for_data(self, func_name)  # type: ignore[attr-defined]


class _NotingProtocol(asyncio.StreamReaderProtocol):
    """asyncio's StreamReaderProtocol, with a writer and a reader that tell an idle connection.

    It tells the reader of every chunk the client sends: its first (see
    :attr:`_DrainingReader._received`) and that its handler has not answered yet.

    Made without asyncio's connected callback (as for a client's stream), so
    that it builds the handler's :class:`_AnsweringWriter` itself: a writer
    whose class were swapped afterwards would lose CPython's specialised
    attribute access (measured: ~50 ns more per write, 5% of an echo server).
    """

    def __init__(
        self,
        reader: _DrainingReader,
        connected: Callable[[_DrainingReader, _AnsweringWriter], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(reader, loop=loop)
        # asyncio keeps a strong reference to the reader only for a callback
        # of its own; the protocol's is weak.
        self._pending_reader: _DrainingReader | None = reader
        self._connected = connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        reader, self._pending_reader = self._pending_reader, None
        if reader is None or self._transport is None:  # type: ignore[attr-defined]
            return  # refused by asyncio (aborted), or made twice
        # A stream transport: a stream server made it.
        stream = cast(asyncio.WriteTransport, transport)
        writer = _AnsweringWriter(stream, self, reader, self._loop)  # type: ignore[attr-defined]
        self._stream_writer = writer
        # What writer.start_tls() reads to know a server's stream from a
        # client's (asyncio calls it only from connection_made, done above).
        self._client_connected_cb = self._connected
        self._connected(reader, writer)

    def data_received(self, data: bytes) -> None:
        # asyncio's own body, a test and a store more: no frame more per chunk.
        reader: _DrainingReader | None = self._stream_reader  # type: ignore[attr-defined]
        if reader is not None:
            if not reader._received:
                reader.first_bytes()
            reader._answered = False
            reader.feed_data(data)


class _AnsweringWriter(asyncio.StreamWriter):
    """asyncio's StreamWriter, noting in its reader that the handler wrote.

    Its methods are asyncio's own bodies with one store more, where a wrapper
    would cost every write a frame. A handler writing through
    ``writer.transport`` itself is not seen: its connection waits for the
    deadline rather than ending at once, and nothing is cut.
    """

    _reader: _DrainingReader

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._reader._answered = True
        self._transport.write(data)  # type: ignore[attr-defined]

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        self._reader._answered = True
        self._transport.writelines(data)  # type: ignore[attr-defined]


def _discard(data: Iterable[SupportsIndex]) -> None:
    """What a drained reader does with late bytes."""


class Serving:
    """The servers, connections and objects the shutdown sequence closes in order."""

    def __init__(self) -> None:
        #: each server started here, with what serves its pending connections as it stops.
        self._servers: list[ServerBacklog] = []
        self._tracked: list[object] = []
        #: the length of _tracked past which track() drops the closed ones (see _prune).
        self._prune_at = _PRUNE_MIN
        #: handler task -> its reader, for every connection being served.
        self._connections: dict[asyncio.Future[Any], _DrainingReader] = {}
        #: readers of connections accepted whose handler has not started yet (see
        #: _wait_opening); weak: a TLS handshake that fails never tells us.
        self._opening: weakref.WeakSet[_DrainingReader] = weakref.WeakSet()
        #: resolved once _opening empties, while _wait_opening waits for it.
        self._opened: asyncio.Future[None] | None = None
        #: tracked objects' close() results and wait_closed(), awaited by wait_closed().
        self._closing: list[asyncio.Future[Any]] = []
        self._accepting = True
        self._draining = False

    @property
    def connections(self) -> int:
        """How many connections are being served right now."""
        return len(self._connections)

    @property
    def accepting(self) -> bool:
        """False once :meth:`stop_accepting` has closed the servers and tracked objects."""
        return self._accepting

    def track(self, obj: object) -> None:
        """Close ``obj`` when the daemon stops accepting, then await its ``wait_closed()``.

        Raises:
            TypeError: ``obj`` has no ``close()`` method.
        """
        if not callable(getattr(obj, "close", None)):
            raise TypeError(f"track() needs an object with a close() method, not {obj!r}")
        _warn_unawaited_server(obj)
        if not self._accepting:
            self._close(obj)
        self._tracked.append(obj)
        if len(self._tracked) > self._prune_at:
            self._prune()

    def _prune(self) -> None:
        """Forget the tracked objects that say they are closed: nothing is left to close.

        A program that tracks an object per connection or per reload (a
        ``StreamWriter``, a pool it replaces) would otherwise keep every one
        for the daemon's whole life. Only ``is_closing()`` (asyncio's
        transports and writers, asyncpg's pools) is believed; anything else is
        kept. Run when the list has doubled since, so tracking stays O(1).
        """
        self._tracked = [obj for obj in self._tracked if not _is_closing(obj)]
        self._prune_at = max(_PRUNE_MIN, 2 * len(self._tracked))

    async def start_server(
        self,
        client_connected_cb: ClientConnected,
        sock: socket.socket,
        *,
        limit: int = _DEFAULT_LIMIT,
        **kwargs: Any,
    ) -> asyncio.Server:
        """``asyncio.start_server`` on ``sock``, keeping its backlog, connections tracked.

        Args:
            client_connected_cb: called with ``(reader, writer)`` for each
                connection; a coroutine function runs as a task.
            sock: a listening socket the framework bound.
            limit: the StreamReader buffer limit, as in ``asyncio.start_server``.
            kwargs: passed on to ``loop.create_server`` (``ssl``,
                ``ssl_handshake_timeout``, ``backlog``...).

        Called once the daemon stopped accepting (a stop came while ``main``
        was still getting ready, and the shutdown hooks run), it does not
        return: a server now would accept nothing, and the caller is
        cancelled with what is left at the shutdown's last step, as if the
        stop had found it at its previous ``await``.
        """
        loop = asyncio.get_running_loop()
        if not self._accepting:
            # Not an error of the program's: main failing here made a stop that
            # raced its start end with status 1 and a traceback.
            never: asyncio.Future[asyncio.Server] = loop.create_future()
            return await never
        # The framework listened with SOMAXCONN; asyncio would listen() again with 100.
        kwargs.setdefault("backlog", socket.SOMAXCONN)

        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._serve(client_connected_cb, reader, writer)

        def factory() -> asyncio.StreamReaderProtocol:
            reader = _DrainingReader(limit=limit, loop=loop)
            if self._draining:
                reader.drain()
            self._opening.add(reader)
            return _NotingProtocol(reader, connected, loop=loop)

        server = await loop.create_server(factory, sock=sock, **kwargs)
        self._servers.append(ServerBacklog(server, sock, factory, kwargs))
        return server

    def _serve(
        self,
        cb: ClientConnected,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Run the handler of a new connection as its own task, tracked until it ends.

        The handler's coroutine is the task itself, not awaited inside a wrapper:
        every resumption of a connection would otherwise pass through one more
        frame (measured: about 2.5% of an echo server's throughput).
        """
        assert isinstance(reader, _DrainingReader)
        self._opening.discard(reader)
        if self._opened is not None and not self._opening and not self._opened.done():
            self._opened.set_result(None)
        try:
            result = cb(reader, writer)
        except Exception:
            _log.exception("connection handler failed", peer=_peer(writer))
            writer.transport.abort()
            return
        if not inspect.isawaitable(result):
            return
        task = asyncio.ensure_future(result)
        self._connections[task] = reader
        task.add_done_callback(functools.partial(self._served, writer))

    def _served(self, writer: asyncio.StreamWriter, task: asyncio.Future[Any]) -> None:
        del self._connections[task]
        if task.cancelled():
            writer.transport.abort()
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, ConnectionError):
            # A client that goes away is the client's business, not a bug.
            _log.debug("connection lost", error=f"{type(exc).__name__}: {exc}")
        else:
            # Retrieved here: asyncio would report it only when the task is collected.
            _log.error("connection handler failed", peer=_peer(writer), exc_info=exc)
        writer.transport.abort()

    def stop_accepting(self, *, handed_over: bool = False) -> None:
        """Close every server started here and every tracked object; idempotent.

        Listening sockets are closed, not merely left unaccepted: new
        connections are refused instead of waiting in a backlog nobody reads.
        Those already in the backlog are accepted and served first. Idle
        connections end at once; busy ones at their next idle read.

        Args:
            handed_over: the listening sockets are an upgrade's successor's
                now: what waits in their backlogs is its to accept.
        """
        if not self._accepting:
            return
        self._accepting = False
        self._draining = True
        for backlog in self._servers:
            self._close_server(backlog, handed_over=handed_over)
        for obj in self._tracked:
            self._close(obj)
        for reader in self._connections.values():
            reader.drain()
        if self._servers or self._tracked:
            _log.info(
                "stopped accepting",
                servers=len(self._servers),
                tracked=len(self._tracked),
                connections=len(self._connections),
            )

    def _close_server(self, backlog: ServerBacklog, *, handed_over: bool) -> None:
        """Close a server, serving first what waits in its backlog unless it was handed over."""
        taken = 0 if handed_over else backlog.take()
        # In the step that emptied the queue: nothing can queue up in between.
        backlog.server.close()
        if taken:
            _log.info("accepted from the backlog", connections=taken)

    def _close(self, obj: object) -> None:
        try:
            result = obj.close()  # type: ignore[attr-defined]
        except Exception:
            _log.exception("closing a tracked object failed", object=repr(obj))
            return
        # Scheduled at once: an object tracked after wait_closed() began is
        # still closed, never left as a coroutine nobody awaits.
        if inspect.isawaitable(result):
            self._closing.append(asyncio.ensure_future(result))
        wait_closed = getattr(obj, "wait_closed", None)
        if callable(wait_closed):
            self._closing.append(asyncio.ensure_future(_call_wait_closed(wait_closed)))
        connections = _server_connections_done(obj)
        if connections is not None:
            self._closing.append(connections)

    async def _wait_opening(self, deadline: float) -> None:
        """Let the connections accepted before the stop reach their handler, briefly.

        asyncio starts a handler two loop turns after the accept (one more than
        uvloop), a TLS connection after its handshake: a client accepted in
        the turn the stop began was counted by none, and its request, already
        read, was cut at the shutdown's last step. One still not started after
        ``_FIRST_REQUEST_GRACE`` (a stalled handshake) is left to that step.
        """
        # Also the turn in which a connection accepted just now builds its protocol.
        await asyncio.sleep(0)
        if not self._opening:
            return
        self._opened = asyncio.get_running_loop().create_future()
        try:
            timeout = min(_FIRST_REQUEST_GRACE, deadline - time.monotonic())
            await asyncio.wait([self._opened], timeout=max(0.0, timeout))
        finally:
            self._opened.cancel()
            self._opened = None

    async def wait_closed(self, deadline: float) -> bool:
        """Wait until ``deadline`` for connections and tracked objects; cancel the rest.

        Args:
            deadline: a :func:`time.monotonic` time.

        Returns:
            True when everything finished on its own.
        """
        self.stop_accepting()
        await self._wait_opening(deadline)
        for reader in self._connections.values():
            reader.drain()
        closing = list(self._closing)
        self._closing.clear()
        pending: set[asyncio.Future[Any]] = {*self._connections, *closing}
        if not pending:
            return True
        started = time.monotonic()
        if self._connections:
            _log.info("waiting for connections", connections=len(self._connections))
        done, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - started))
        for future in done:
            if future in closing and not future.cancelled() and future.exception() is not None:
                _log.error("closing a tracked object failed", exc_info=future.exception())
        if not pending:
            _log.info("connections finished", seconds=round(time.monotonic() - started, 3))
            return True
        _log.warning(
            "connections cancelled after the drain timeout",
            connections=sum(1 for f in pending if f in self._connections),
            tracked=sum(1 for f in pending if f in closing),
            seconds=round(time.monotonic() - started, 3),
        )
        for future in pending:
            future.cancel()
        await asyncio.wait(pending, timeout=_CANCEL_GRACE)
        return False


def _server_connections_done(obj: object) -> asyncio.Future[Any] | None:
    """A future resolved once every connection of asyncio's closed ``Server`` ``obj`` is gone.

    Before CPython 3.12.1, ``Server.wait_closed()`` returns at once after
    ``close()``: a tracked server's requests in flight were cut at the
    shutdown's last step, with "connections finished" logged. 3.12.1 waits by
    adding a future to the server's private ``_waiters``, resolved when its
    ``_active_count`` reaches 0 (or already None: nothing to wait for); this
    does the same on every version (a second future there is harmless), and
    nothing when those names are not what 3.11-3.13 have.
    """
    if not isinstance(obj, base_events.Server):
        return None
    waiters = getattr(obj, "_waiters", None)
    if not isinstance(waiters, list):
        return None
    future: asyncio.Future[Any] = obj.get_loop().create_future()
    waiters.append(future)
    return future


#: uvloop's Server types already warned about (one warning per daemon).
_warned_servers: set[type] = set()


def _warn_unawaited_server(obj: object) -> None:
    """Warn, once, that a tracked uvloop ``Server``'s connections cannot be awaited.

    uvloop's ``Server.wait_closed()`` returns at once after ``close()`` and its
    connection count is out of Python's reach: requests in flight on such a
    server are cut at the shutdown's last step. ``ctx.start_server`` tracks
    each connection itself, on either loop.
    """
    kind = type(obj)
    if kind.__module__.split(".")[0] != "uvloop" or kind.__name__ != "Server":
        return
    if kind in _warned_servers:
        return
    _warned_servers.add(kind)
    _log.warning(
        "tracked server's connections cannot be awaited at shutdown",
        server=repr(obj),
        hint="serve with ctx.start_server, or run with uvloop=False",
    )


def _is_closing(obj: object) -> bool:
    """Whether ``obj.is_closing()`` says True (a raising or missing one: no)."""
    is_closing = getattr(obj, "is_closing", None)
    if not callable(is_closing):
        return False
    try:
        return is_closing() is True
    except Exception:
        return False


async def _call_wait_closed(wait_closed: Callable[[], object]) -> None:
    result = wait_closed()
    if inspect.isawaitable(result):
        await result


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer) if peer else "unix"
