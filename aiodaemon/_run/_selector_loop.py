"""asyncio's own event loop (``uvloop=False``), without its storm at the open-files limit.

When ``accept()`` fails for want of descriptors or memory (EMFILE, ENFILE,
ENOBUFS, ENOMEM), CPython's selector loop logs the error, stops watching the
listener and retries in a second, as it should; but then it goes on with its
accept loop, once per connection the backlog may hold (python/cpython#151615,
fixed in 2026, too late for 3.11). With the ``SOMAXCONN`` backlog aiodaemon keeps for
every server (4,096), one connection waiting while the daemon is out of
descriptors cost 4,096 error records with tracebacks at once, and a second
later 4,096 retries each ending the same way: ten thousand records a second
and a busy core for as long as the descriptors stayed used up.

It also serves a connection accepted in the loop turn in which its server
closes (see :meth:`SelectorEventLoop._accept_connection2`), and it does not
lose a signal whose byte did not fit in its wakeup socket (see
:meth:`SelectorEventLoop._read_from_self`).
"""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
from collections.abc import Callable
from typing import Any, TypeVarTuple

from ._kept_signals import KeepsSignals, SignalKeeper

__all__ = ["SelectorEventLoop"]

#: What ``accept()`` fails with when the daemon, or the machine, is out of resources.
_RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))

_Ts = TypeVarTuple("_Ts")


def _run_pending_signal_handlers() -> None:
    # Empty: entering a Python function runs the handlers of the signals tripped so far.
    pass


class SelectorEventLoop(KeepsSignals, asyncio.SelectorEventLoop):
    """The selector loop: its accept loop ends at a resource error; all it accepts is served;
    no signal is lost to a full wakeup socket."""

    def __init__(self) -> None:
        #: signals whose Python-level handler ran since the last read of the wakeup socket.
        self._noted_signals: set[int] = set()
        super().__init__()
        self.signal_keeper = SignalKeeper(self)

    def add_signal_handler(self, sig: int, callback: Callable[[*_Ts], object], *args: *_Ts) -> None:
        super().add_signal_handler(sig, callback, *args)
        # The wakeup socket holds a few hundred bytes: a signal whose byte does
        # not fit (a flood of on_signal's while sync code holds the loop) was
        # lost for good, a SIGTERM among them (the daemon ran on). Its
        # Python-level handler, run in any case, notes it instead of asyncio's
        # no-op (uvloop keeps such a set too). Not warned of: it is not lost.
        signal.set_wakeup_fd(self._csock.fileno(), warn_on_full_buffer=False)  # type: ignore[attr-defined]
        signal.signal(sig, self._note_signal)

    def _note_signal(self, signum: int, frame: object) -> None:
        self._noted_signals.add(signum)

    def _read_from_self(self) -> None:
        """Handle every signal read from the wakeup socket, then those noted without a byte.

        A noted signal is taken for one whose byte was lost only if the socket
        is still empty after the note was taken: CPython writes the byte before
        the handler can run, so a byte of it still in flight would be read then,
        and no signal is handled twice (the second of two SIGTERMs forces the
        exit). The one exception, a signal caught by another thread in the
        instant between its note and its byte, cannot force it: the daemon
        takes one stop signal from the loop per arrival its forced-exit handler
        saw (``ForcedExit.loop_reads``), and drops the second.
        """
        unmatched: set[int] = set()
        data = self._read_all_from_self()
        while True:
            # The handler of every signal whose byte was just read has run after this.
            _run_pending_signal_handlers()
            unmatched |= self._take_noted_signals()
            for signum in data:
                if signum:  # null bytes are _write_to_self()'s
                    unmatched.discard(signum)
                    self._handle_signal(signum)  # type: ignore[attr-defined]
            data = self._read_all_from_self()
            if not data:
                break
        for signum in unmatched:
            self._handle_signal(signum)  # type: ignore[attr-defined]

    def _take_noted_signals(self) -> set[int]:
        # One swap: a handler that runs meanwhile notes in one set or the other.
        noted, self._noted_signals = self._noted_signals, set()
        return noted

    def _read_all_from_self(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self._ssock.recv(4096)  # type: ignore[attr-defined]
            except InterruptedError:
                continue
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def _accept_connection(self, protocol_factory: Any, sock: Any, *args: Any, **kw: Any) -> None:
        # The loop's own retry passes the wrapper back in: wrap the socket once.
        listener = sock.sock if isinstance(sock, _AcceptUntilExhausted) else sock
        # A wrapper, not a copy of the private method: its signature differs
        # between Python versions, and a fixed one returns where we would.
        super()._accept_connection(  # type: ignore[misc]
            protocol_factory, _AcceptUntilExhausted(listener), *args, **kw
        )

    async def _accept_connection2(
        self,
        protocol_factory: Any,
        conn: Any,
        extra: Any,
        sslcontext: Any = None,
        server: Any = None,
        *args: Any,
        **kw: Any,
    ) -> None:
        # The accept runs in one loop turn, the transport is made in the next:
        # a server closed in between (a stop, an upgrade's hand-over) made
        # asyncio's transport fail to attach to it (an assertion it swallows),
        # and the connection was closed with the client's request unread, a
        # reset, where the successor would have served it from the shared
        # backlog. Served unattached: ctx.start_server tracks its handler
        # itself; the closed server's wait_closed() does not wait for it.
        if server is not None and not server.is_serving():
            server = None
        await super()._accept_connection2(  # type: ignore[misc]
            protocol_factory, conn, extra, sslcontext, server, *args, **kw
        )


class _AcceptUntilExhausted:
    """A listening socket that answers "nothing waiting" once ``accept()`` ran out of resources.

    So the loop's pass over the backlog ends at its first resource error, as it
    ends when the backlog is empty; the retry the loop scheduled comes a
    second later. Everything else goes to the socket itself.
    """

    __slots__ = ("exhausted", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.exhausted = False

    def accept(self) -> tuple[socket.socket, Any]:
        if self.exhausted:
            raise BlockingIOError(errno.EAGAIN, "accept again after the loop's retry delay")
        try:
            return self.sock.accept()
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRORS:
                self.exhausted = True
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)
