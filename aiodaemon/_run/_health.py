"""The health endpoint: ``/livez`` and ``/readyz`` over a minimal HTTP/1.1 responder.

It runs on the daemon's own event loop on purpose: ``/livez`` is answered only
while that loop turns, so a loop blocked by synchronous code fails the liveness
probe, which is what a probe is for.

Built to be exposed to anything that can connect (DESIGN section 6): a request
is at most :data:`MAX_REQUEST` bytes and must arrive within
:data:`REQUEST_TIMEOUT`; at most :data:`MAX_CONNECTIONS` are open (fewer under a
low ``RLIMIT_NOFILE``: an eighth of it, as for the control socket), the oldest
one still open that owes no answer (answered and closing, or the slowest client)
giving way to a new one, the oldest of all when every one owes its answer (so
slow clients cannot starve the probes, nor cut one waiting for its verdict
while others can go); answers are fixed templates
that never echo what the client sent; one request per connection
(``Connection: close``). No task is created per connection: a protocol object,
a timer and a small buffer is all one costs.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import orjson
import structlog

from .._prefork._fdshare import connection_cap
from ._hooks import HookFunction, call_async, describe
from ._outcome import error_text
from ._own_tasks import cancel_task, own_task
from ._state import State

if TYPE_CHECKING:
    from ._context import Context

__all__ = [
    "CHECK_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_REQUEST",
    "REQUEST_TIMEOUT",
    "HealthServer",
]

_log = structlog.get_logger("aiodaemon")

#: Longest request (request line and headers) read, in bytes.
MAX_REQUEST = 4096
#: Seconds from accept to the end of the request headers before the connection is
#: dropped; and again from there for the answer (the checks take at most CHECK_TIMEOUT).
REQUEST_TIMEOUT = 2.0
#: Connections open at once; a new one evicts the oldest still open. Lowered to
#: an eighth of the soft RLIMIT_NOFILE (see _fdshare), so idle connections
#: cannot take the descriptors the service needs.
MAX_CONNECTIONS = 128
#: Seconds each readiness check may take before it counts as failed.
CHECK_TIMEOUT = 1.0
#: Seconds an answered connection may stay open for the client to close it first:
#: closing with unread bytes would reset the connection under the answer.
_LINGER = 1.0

_READY_STATES = (State.RUNNING, State.RELOADING)

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    503: b"Service Unavailable",
}


def _answer(code: int, body: bytes, *, head: bool = False) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Cache-Control: no-store\r\nConnection: close\r\n\r\n%s"
        % (code, _REASONS[code], len(body), b"" if head else body)
    )


_BAD_REQUEST = _answer(400, b'{"error":"bad request"}')
_NOT_FOUND = _answer(404, b'{"error":"not found"}')
#: RFC 9110 9.3.2: no content in an answer to HEAD, whatever the status.
_NOT_FOUND_HEAD = _answer(404, b'{"error":"not found"}', head=True)


class HealthServer:
    """Serves ``/livez`` and ``/readyz`` on a listening socket the framework bound."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        state: Callable[[], State],
        reported_ready: Callable[[], bool],
        checks: Sequence[HookFunction] = (),
        context: Context | None = None,
    ) -> None:
        """Prepare to serve; :meth:`start` begins.

        Args:
            sock: the bound, listening health socket.
            state: the lifecycle state now.
            reported_ready: whether the daemon has reported ready.
            checks: ``@readiness_check`` functions, run on each ``/readyz``.
            context: what checks that take an argument receive.
        """
        self._sock = sock
        self._state = state
        self._reported_ready = reported_ready
        self._checks = tuple(checks)
        self._context = context
        self._server: asyncio.Server | None = None
        # Insertion-ordered: the first entry is the oldest connection.
        self._open: dict[_HealthProtocol, None] = {}
        # Read once: the limit the daemon runs under (raised at start, never after).
        self._max_connections = connection_cap(
            MAX_CONNECTIONS, resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        )
        self._evaluation: asyncio.Task[bool] | None = None
        #: checks still running past their bound, cancelled: failing until they end.
        self._stuck: dict[HookFunction, asyncio.Task[str | None]] = {}
        self._failing: str | None = None
        #: the state when an upgrade's hand-over cut the listener (see stop_accepting).
        self._handed_over: State | None = None
        self._answered = asyncio.Event()

    async def start(self) -> None:
        """Begin answering."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _HealthProtocol(self), sock=self._sock, backlog=socket.SOMAXCONN
        )

    def stop_accepting(self) -> None:
        """Close the listener at an upgrade's hand-over, still answering the open connections.

        Their probes reached the address before the successor took it over, and
        the address stays served: they are answered as this daemon stood now
        (ready, its checks' last verdict), not with the 503 of its shutdown.
        """
        if self._server is not None:
            self._server.close()
            self._server = None
        self._handed_over = self._state()
        self._check_answered()

    async def wait_answered(self) -> None:
        """After :meth:`stop_accepting`: wait until every open connection got its answer.

        A probe that connected just before the hand-over may send its request
        a moment later; closing it unanswered would fail the probe. Each
        connection's own :data:`REQUEST_TIMEOUT` bounds the wait; nothing to
        wait for without a hand-over.
        """
        if self._handed_over is not None:
            await self._answered.wait()

    def close(self) -> None:
        """Stop answering: the listener and every open connection are closed."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for protocol in list(self._open):
            protocol.abort()
        if self._evaluation is not None:
            cancel_task(self._evaluation)

    # --- connections ------------------------------------------------------------

    def _opened(self, protocol: _HealthProtocol) -> None:
        if len(self._open) >= self._max_connections:
            # The oldest that owes no answer gives way: answered and lingering,
            # or the slowest client; a whole request waiting for the checks'
            # verdict is spared (a probe failed when ~128 connections came while
            # the checks ran). Only when every one waits does the oldest go:
            # refusing the newcomer instead let complete /readyz requests with
            # slow checks hold every slot, and fail /livez, which needs none.
            victim = next((other for other in self._open if not other.owed), None)
            if victim is None:
                victim = next(iter(self._open))
            del self._open[victim]
            victim.abort()
        self._open[protocol] = None

    def _closed(self, protocol: _HealthProtocol) -> None:
        self._open.pop(protocol, None)
        self._check_answered()

    def _check_answered(self) -> None:
        if self._handed_over is not None and all(p.answered for p in self._open):
            self._answered.set()

    # --- answers ----------------------------------------------------------------

    def livez(self) -> tuple[int, bytes]:
        """The liveness answer: the loop answered, so 200."""
        return 200, _state_body(self._now())

    def ready_now(self) -> bool | None:
        """False when not ready whatever the checks say; None when the checks decide."""
        if not self._reported_ready() or self._now() not in _READY_STATES:
            return False
        if self._handed_over is not None:
            # Our checks may fail as the program shuts down: their last verdict stands.
            return self._failing is None
        return True if not self._checks else None

    def evaluate(self) -> asyncio.Task[bool]:
        """The running evaluation of the readiness checks, shared by concurrent probes."""
        if self._evaluation is None or self._evaluation.done():
            self._evaluation = own_task(self._run_checks(), "aiodaemon-readiness")
        return self._evaluation

    @property
    def failing(self) -> str | None:
        """Why the last evaluation failed (each failing check and its reason); None if it passed."""
        return self._failing

    def readyz(self, checks_ok: bool) -> tuple[int, bytes]:
        """The readiness answer once the checks (if any) have passed or failed."""
        state = self._now()
        ready = checks_ok and self._reported_ready() and state in _READY_STATES
        return (200 if ready else 503), _state_body(state)

    async def _run_checks(self) -> bool:
        loop = asyncio.get_running_loop()
        failures: dict[HookFunction, str | None] = {}
        running: dict[HookFunction, asyncio.Task[str | None]] = {}
        # A check registered twice runs once (one task, one verdict per check).
        for check in dict.fromkeys(self._checks):
            if check in self._stuck:
                # Not run again beside itself: a check that ignores its
                # cancellation would pile up a task per evaluation.
                failures[check] = _no_answer(check)
            else:
                failures[check] = None
                running[check] = loop.create_task(
                    self._run_check(check), name=f"readiness check {describe(check)}"
                )
        try:
            if running:
                # The bound is kept on the waiting side: asyncio.timeout inside the
                # check could not end one that swallows its cancellation.
                await asyncio.wait(running.values(), timeout=CHECK_TIMEOUT)
        finally:
            for check, task in running.items():
                if task.cancelled():
                    # By itself, or by the shutdown, which cancels every task.
                    failures[check] = f"{describe(check)}: CancelledError"
                elif task.done():
                    failures[check] = task.result()
                else:
                    task.cancel()
                    failures[check] = _no_answer(check)
                    # It counts as failing until it ends (cancelled, or not).
                    self._stuck[check] = task
                    task.add_done_callback(functools.partial(self._unstuck, check))
        found = [failure for failure in failures.values() if failure is not None]
        failing = "; ".join(found) if found else None
        if failing != self._failing:
            # Logged when the verdict changes, not on every probe.
            if failing is None:
                _log.info("readiness checks pass again")
            else:
                _log.warning("readiness check failed", reason=failing)
            self._failing = failing
        return failing is None

    def _unstuck(self, check: HookFunction, task: asyncio.Task[str | None]) -> None:
        if self._stuck.get(check) is task:
            del self._stuck[check]

    async def _run_check(self, check: HookFunction) -> str | None:
        """Run one check in its own task: its failure said in one line, or None."""
        # The runtime always gives a context; tests of the responder alone may not.
        context = cast("Context", self._context)
        try:
            result = await call_async(check, context)
        except (SystemExit, KeyboardInterrupt):
            raise  # the program asks to end (see _user_exit)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # cancelled at the bound, or with the evaluation
            return f"{describe(check)}: {error_text(exc)}"
        except BaseException as exc:
            # A TimeoutError of the check's own (its wait_for ran out, a connect
            # got ETIMEDOUT) is its failure, said as such, not our 1 s bound.
            # GeneratorExit or a BaseException of the program's fails the check as
            # an Exception does, instead of ending the evaluation without a word.
            return f"{describe(check)}: {error_text(exc)}"
        if result is False:
            return f"{describe(check)}: returned False"
        return None

    def _now(self) -> State:
        return self._state() if self._handed_over is None else self._handed_over


def _no_answer(check: HookFunction) -> str:
    return f"{describe(check)}: no answer within {CHECK_TIMEOUT}s"


def _state_body(state: State) -> bytes:
    return orjson.dumps({"state": state.value})


class _HealthProtocol(asyncio.Protocol):
    """One connection: read one request, answer it, close."""

    def __init__(self, server: HealthServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        #: a whole request arrived (or a bad one): nothing more is parsed.
        self._complete = False
        #: the answer was written.
        self._sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._server._opened(self)
        self._rearm(REQUEST_TIMEOUT)

    def data_received(self, data: bytes) -> None:
        if self._complete:
            return  # whatever follows the request is discarded, never parsed
        if not self._buffer:
            # RFC 9112 2.2: empty lines before the request line are ignored (a
            # client's CRLF after an earlier request). Not counted against
            # MAX_REQUEST; the connection's deadline bounds them.
            data = data.lstrip(b"\r\n")
        room = MAX_REQUEST - len(self._buffer)
        self._buffer += data[:room]
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            end = self._buffer.find(b"\n\n")
        if end >= 0:
            self._complete = True
            # The request is in: its answer is owed, though the checks may take
            # up to CHECK_TIMEOUT more; the connection's time starts again.
            self._rearm(REQUEST_TIMEOUT)
            self._dispatch(bytes(self._buffer[:end]))
        elif len(data) > room:
            self._complete = True
            self._send(_BAD_REQUEST)
        if self._complete:
            self._buffer = bytearray()

    def eof_received(self) -> bool:
        if self._sent:
            assert self._transport is not None
            self._transport.close()
        elif not self._complete:
            self.abort()  # the request never completed: nothing to answer
        # Else a half-closed client waits for the readiness verdict: stay open.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._server._closed(self)
        self._transport = None

    def abort(self) -> None:
        """Drop the connection now (deadline passed, evicted, or the server closes)."""
        if self._transport is not None:
            self._transport.abort()

    def _dispatch(self, request: bytes) -> None:
        line = request.split(b"\n", 1)[0].rstrip(b"\r")
        parts = line.split(b" ")
        if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            self._send(_BAD_REQUEST)
            return
        method, target, _ = parts
        if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            # The absolute form, which a server must accept (RFC 9112 3.2.2): a
            # prober going through a proxy sends it. The path is what follows
            # the authority, which ends at the first "/", "?" or "#" (none: "/").
            rest = target.split(b"//", 1)[1]
            ends = [at for at in map(rest.find, (b"/", b"?", b"#")) if at >= 0]
            target = b"/" if not ends else rest[min(ends) :]
            if not target.startswith(b"/"):
                target = b"/"
        path = target.split(b"?", 1)[0].split(b"#", 1)[0]
        head = method == b"HEAD"
        # DESIGN: GET of the two paths, "anything else -> 404" (POST /livez too,
        # where HTTP would allow a 405). HEAD is GET without the body (RFC 9110).
        if path not in (b"/livez", b"/readyz") or method not in (b"GET", b"HEAD"):
            self._send(_NOT_FOUND_HEAD if head else _NOT_FOUND)
            return
        if path == b"/livez":
            code, body = self._server.livez()
            self._send(_answer(code, body, head=head))
            return
        verdict = self._server.ready_now()
        if verdict is not None:
            code, body = self._server.readyz(verdict)
            self._send(_answer(code, body, head=head))
            return

        def answer(task: asyncio.Task[bool]) -> None:
            ok = not task.cancelled() and task.exception() is None and task.result()
            code, body = self._server.readyz(ok)
            self._send(_answer(code, body, head=head))

        self._server.evaluate().add_done_callback(answer)

    @property
    def owed(self) -> bool:
        """Whether a whole request waits for its answer (the readiness checks' verdict)."""
        return self._complete and not self._sent

    @property
    def answered(self) -> bool:
        """Whether the answer was written (or the request was not worth one)."""
        return self._sent

    def _send(self, response: bytes) -> None:
        self._sent = True
        self._server._check_answered()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(response)
        if transport.can_write_eof():
            transport.write_eof()
        self._rearm(_LINGER)

    def _rearm(self, seconds: float) -> None:
        """Drop the connection ``seconds`` from now, instead of when it was due."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._due)

    def _due(self) -> None:
        """The deadline passed: drop the connection, unless its answer is owed and coming.

        A whole request's verdict always comes (the checks' bound is on this
        loop's clock, and a stop cancels them): after a pause of the process
        (SIGSTOP) past both, the deadline ran in the same turn as the bound,
        before the verdict, and cut the probe unanswered.
        """
        if self._complete and not self._sent:
            self._rearm(REQUEST_TIMEOUT)
            return
        self.abort()
