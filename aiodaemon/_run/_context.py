"""The Context handed to ``main`` and to hooks."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._state import State

if TYPE_CHECKING:
    import asyncio
    from typing import Protocol, Unpack

    from .._options import ServerOptions
    from .._prefork._config import Options
    from ._serving import ClientConnected, Serving

    class _Closable(Protocol):
        """What ``track()`` takes: ``close()`` is called (its result awaited if awaitable)."""

        def close(self) -> object: ...


if TYPE_CHECKING:
    # Bound, so a type checker refuses what track() refuses at run time (no close()).
    T = TypeVar("T", bound=_Closable)
else:
    # Unbound at run time: a string bound is compiled (a ForwardRef) at every start.
    T = TypeVar("T")

__all__ = ["Context"]


class _ListenSockets(Mapping[str, socket.socket]):
    """``ctx.sockets``: read-only, and a missing name says which names there are.

    A bare ``KeyError: 'http'`` from a startup hook left the reader to find
    the ``listen=`` name the daemon was started with.
    """

    def __init__(self, sockets: Mapping[str, socket.socket]) -> None:
        self._sockets = dict(sockets)

    def __getitem__(self, name: str) -> socket.socket:
        try:
            return self._sockets[name]
        except KeyError:
            known = ", ".join(map(repr, self._sockets)) or "none"
            raise KeyError(f"no listen= socket named {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        # Mapping's would build the message above for every miss.
        return name in self._sockets

    def __iter__(self) -> Iterator[str]:
        return iter(self._sockets)

    def __len__(self) -> int:
        return len(self._sockets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._sockets!r})"


class Context:
    """The running daemon as the program sees it, given to ``main`` and to hooks.

    A hook or ``main`` that takes one argument receives it; aiodaemon creates
    it, programs never do.

    Attributes:
        sockets: read-only mapping of each ``listen=`` name to its listening socket
            (bound before the detach, or passed by systemd socket activation); a
            name not given raises ``KeyError`` naming the known ones.
        options: the validated options the daemon runs with.

    Examples:
        ```python
        async def main(ctx: aiodaemon.Context) -> None:
            await ctx.start_server(handle, "http")  # drained at shutdown
            ctx.set_status("serving")
            await ctx.wait_stopping()
        ```
    """

    def __init__(
        self,
        *,
        options: Options,
        sockets: Mapping[str, socket.socket],
        state: Callable[[], State],
        ready: Callable[[], None],
        status: Callable[[str], None],
        shutdown: Callable[[int], None],
        reload: Callable[[], None],
        stopping: asyncio.Event,
        serving: Serving,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.options = options
        self.sockets: Mapping[str, socket.socket] = _ListenSockets(sockets)
        self._state = state
        self._ready = ready
        self._status = status
        self._shutdown = shutdown
        self._reload = reload
        self._stopping = stopping
        self._serving = serving
        self._loop = loop
        #: the loop's thread: the Context is made there.
        self._loop_thread = threading.get_ident()

    def _on_loop(self, request: Callable[..., None], *args: Any) -> None:
        """Carry out ``request(*args)`` on the daemon's loop thread, from any thread.

        Run there by a thread of the program's, the request changed the state
        but could not begin the shutdown (no running loop in that thread): the
        daemon stopped for nothing, SIGTERM included. Handed to the loop
        instead; once the loop is closed (the run is over) there is nothing
        left to ask.
        """
        if self._loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            request(*args)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(request, *args)

    @property
    def state(self) -> State:
        """The lifecycle state right now."""
        return self._state()

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        return os.getpid()

    def notify_ready(self) -> None:
        """Report readiness now; for ``ready="manual"`` programs that bind their own sockets.

        Releases the launching process and sends ``READY=1`` to systemd. Called
        while startup hooks still run (from one of them), it takes effect once
        they have all returned: a daemon is never ready before its startup
        hooks are done. Calling it again, or with ``ready="startup"``, adds
        nothing. Like the other requests, it may be called from any thread.
        """
        self._on_loop(self._ready)

    def set_status(self, text: str) -> None:
        """Publish a one-line status (systemd ``STATUS=``, and the log).

        Args:
            text: one line, shown by ``systemctl status``.

        Raises:
            TypeError: ``text`` is not a str (at the call, under systemd or not).
        """
        if not isinstance(text, str):
            # Checked here, not where it is sent: only a notify socket's sender
            # needs a str, so a daemon that ran in development failed its main
            # under systemd, or (called from a thread) failed in the loop instead.
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        self._on_loop(self._status, text)

    def request_shutdown(self, exit_code: int = 0) -> None:
        """Begin a graceful shutdown, as SIGTERM would, ending with ``exit_code``.

        The whole shutdown sequence runs (not-ready, drain delay, stop
        accepting, connections finish, shutdown hooks); asking again changes
        nothing. Logged (``shutdown requested by the program``). Before ready
        (in a startup hook) it ends the start as ``sys.exit(exit_code)`` would:
        with that status, and a reason for the launcher naming the hook.

        Args:
            exit_code: the daemon's exit status once the shutdown is done
                (outside 0-255: its low byte, and 1 where that is 0).

        Raises:
            TypeError: ``exit_code`` is not an int (at the call, not at the exit).
        """
        if not isinstance(exit_code, int):
            raise TypeError(f"exit_code must be an int, not {type(exit_code).__name__}")
        self._on_loop(self._shutdown, exit_code)

    def request_reload(self) -> None:
        """Begin a reload, as SIGHUP would: reopen log files, run the reload hooks.

        Returns at once; reloads never overlap, and a request during one
        coalesces into one more run.
        """
        self._on_loop(self._reload)

    async def wait_stopping(self) -> None:
        """Return once shutdown has begun: for loops in ``main`` that stop on their own."""
        await self._stopping.wait()

    async def start_server(
        self, client_connected_cb: ClientConnected, name: str, **kwargs: Unpack[ServerOptions]
    ) -> asyncio.Server:
        """``asyncio.start_server`` on ``ctx.sockets[name]``, drained at shutdown.

        The framework keeps the socket's backlog (``asyncio`` alone would shrink
        it to 100) and tracks every connection: at shutdown, after the drain
        delay, the server stops accepting (its listening socket is closed, so
        new connections are refused), idle connections read end-of-stream, and
        requests in flight finish before the shutdown hooks run.

        Args:
            client_connected_cb: ``(reader, writer)`` callback, as for
                ``asyncio.start_server``; a coroutine function runs as a task.
            name: a ``listen=`` name.
            kwargs: ``limit`` and the ``loop.create_server`` options that apply
                to a bound socket (``ssl``, ``backlog``...), typed by ``ServerOptions``.

        Once the daemon stopped accepting (a stop came while ``main`` was
        still getting ready), it does not return: the caller is cancelled at
        the shutdown's last step, as if the stop had found it at its previous
        ``await``, and the exit status is the stop's.

        Raises:
            KeyError: ``name`` is not a ``listen=`` name.
        """
        return await self._serving.start_server(client_connected_cb, self.sockets[name], **kwargs)

    def track(self, obj: T) -> T:
        """Close ``obj`` when the daemon stops accepting, and await its ``wait_closed()``.

        For servers and other resources the program created itself: anything
        with ``close()`` (its result is awaited if awaitable) and optionally
        ``wait_closed()``. An object whose ``is_closing()`` returns True (a
        ``StreamWriter`` the program closed) is forgotten in time, so tracking
        one per connection or per reload does not grow for ever. Returns ``obj``.

        Raises:
            TypeError: ``obj`` has no ``close()`` method.
        """
        self._serving.track(obj)
        return obj
