"""Run phase: the control socket served on the daemon's own event loop.

Every connection is checked with ``SO_PEERCRED`` before a byte is read: a peer
that is neither root nor in ``peer_uids`` is closed at once, without an answer.
Requests are bounded in size (:data:`MAX_REQUEST`), in time
(:data:`REQUEST_TIMEOUT`) and in number (:data:`MAX_CONNECTIONS` at once, of
which :data:`MAX_WAITING` may wait for a result, both lowered to an eighth of
a low ``RLIMIT_NOFILE``), so a slow or hostile client
costs the daemon a few bytes and one timer, never its service, and clients
waiting on a slow reload never keep ``stop`` or ``status`` out; one that
hangs up while it waits gives its place back. Nothing but bytes is ever sent:
no descriptor reaches a peer.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import resource
import select
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from .._prefork._control_protocol import (
    LEFT_WHEN_HUNG_UP,
    MAX_REQUEST,
    MAX_WAIT,
    NOT_BEGUN_WHEN_HUNG_UP,
    PROMPT_COMMANDS,
    REQUEST_TIMEOUT,
    VERSION,
    ProtocolError,
    connection_caps,
    decode,
    encode,
    failure,
)
from .._prefork._messages import seconds_shown
from .._prefork._readiness import readable
from ._loop import sockname
from ._own_tasks import cancel_task, own_task
from ._reloads import ReloadAbandoned, ReloadTracker
from ._services import CONTROL_CONNECTION

__all__ = ["CLOSE_GRACE", "Command", "ControlServer", "DaemonCommands"]

_log = structlog.get_logger("aiodaemon")

#: An async function answering one decoded request with one answer.
Command = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

_PEERCRED = struct.Struct("3i")
#: Seconds an answer may take to leave (a client that never reads).
_WRITE_TIMEOUT = 5.0
#: At most one "refused" log line per this many seconds: a flood must not flood the log.
_REFUSAL_LOG_INTERVAL = 10.0
#: Seconds between looks at whether a client waiting for a reload is still there.
_HANG_UP_CHECK = 0.5
#: Seconds the close at the shutdown's end gives requests already made to be answered.
CLOSE_GRACE = 0.5
#: Loop turns that let the loop accept what waits in the backlog and start its tasks.
_SETTLE_TURNS = 3


class ControlServer:
    """Serve ``commands`` on ``sock`` (bound, not yet listening) to root and ``peer_uids``.

    ``commands`` maps each ``cmd`` of the protocol to its :data:`Command`; it may
    be extended (``server.commands["name"] = ...``) while the server runs.
    """

    def __init__(
        self,
        sock: socket.socket,
        peer_uids: Collection[int],
        commands: Mapping[str, Command],
    ) -> None:
        self._sock = sock
        self._peer_uids = frozenset({0, *peer_uids})
        self.commands: dict[str, Command] = dict(commands)
        self._server: asyncio.AbstractServer | None = None
        self._active: set[asyncio.Task[Any]] = set()
        #: every connection's task, from its accept to its end.
        self._connections: set[asyncio.Task[None]] = set()
        #: connections running a command that is not prompt (see MAX_WAITING).
        self._waiting = 0
        # Read once: the limit the daemon runs under (raised at start, never after).
        self._max_connections, self._max_waiting = connection_caps(
            resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        )
        self._refused = 0
        self._refusal_logged = -_REFUSAL_LOG_INTERVAL

    async def start(self) -> None:
        """Listen and serve; call in the daemon's own process (``SO_PEERCRED`` names it)."""
        # listen() again on an inherited listening socket is fine: it refreshes
        # the credentials clients see to this process's.
        self._sock.listen(64)
        # start_server, not start_unix_server: since Python 3.13 the latter stats
        # the socket's bound path (PermissionError in a root-only directory once
        # privileges are dropped) and unlinks it when the listener closes, which
        # is ours to do (lstat first) and never at an upgrade's hand-over.
        self._server = await asyncio.start_server(
            self._connected, sock=self._sock, limit=MAX_REQUEST + 1
        )

    def stop_accepting(self) -> None:
        """Close the listener, finishing the connections being served (an upgrade)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def claim_peer_credentials(self) -> None:
        """``listen`` again, so clients see this process in ``SO_PEERCRED`` once more.

        After a failed upgrade whose successor had listened on the shared socket.
        """
        self._sock.listen(64)

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Answer the requests already made (within ``grace`` s), stop accepting, end the rest.

        Requests queued while the loop was held up, and those being answered,
        get their answer ("stopping"): cut, ``status`` fell back to the
        pidfile, which says "running".
        """
        await self._answer_made(grace)
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            cancel_task(task)
        if self._connections:
            await asyncio.wait(self._connections, timeout=1.0)

    async def _answer_made(self, grace: float) -> None:
        """Wait until no connection is open or queued in the backlog, for ``grace`` s at most."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while True:
            for _ in range(_SETTLE_TURNS):
                await asyncio.sleep(0)
            open_now = {task for task in self._connections if not task.done()}
            # Readable: a connection waits in the listening socket's backlog.
            queued = self._server is not None and readable(self._sock.fileno(), 0)
            left = deadline - loop.time()
            if not (open_now or queued) or left <= 0:
                return
            if open_now:
                await asyncio.wait(open_now, timeout=left)
            else:
                # Not accepted yet (asyncio's loop pauses accepting at EMFILE): look again.
                await asyncio.sleep(min(left, 0.01))

    def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The task is made here rather than by start_server: known from the
        # accept on, so that the close can answer it, and named, so that the
        # shutdown's cancel step leaves it to the close.
        task = own_task(self._serve(reader, writer), CONTROL_CONNECTION)
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        try:
            peer = _peer_credentials(writer)
            if peer is None or peer[1] not in self._peer_uids:
                self._refuse(peer)
                return
            if len(self._active) >= self._max_connections or task is None:
                # An allowed peer is told why (a few bytes, never waited on), and
                # that it is for now: the CLI asks again (see ask_patiently).
                busy = f"busy: {self._max_connections} control connections open"
                writer.write(encode(failure(busy, transient=True)))
                return
            self._active.add(task)
            fd = writer.get_extra_info("socket").fileno()
            # The connection's own task: a command that keeps it (stop's watch) finds it here.
            _connection_fd.set(fd)
            try:
                answer = await self._answer(reader, fd)
                writer.write(encode(answer))
                # Not wait_for: on 3.11 it drains in a task of its own, whose
                # error (a peer gone: BrokenPipeError) nobody retrieves when the
                # shutdown's close cancels this one meanwhile, and asyncio logs
                # it as "Task exception was never retrieved".
                async with asyncio.timeout(_WRITE_TIMEOUT):
                    await writer.drain()
            finally:
                self._active.discard(task)
        except (OSError, TimeoutError):
            pass  # the peer left or stalled: nobody to tell
        except Exception:
            # A bug in answering an allowed peer: the connection closes without
            # an answer, but the log says why (nothing escapes unseen).
            _log.exception("control request failed")
        except asyncio.CancelledError:
            # close() at the end of the shutdown ends the connections still open.
            # This task is the connection's own and nobody awaits it: ending it
            # quietly keeps Python 3.11's streams from logging the cancellation
            # as an "unhandled exception in event loop".
            pass
        finally:
            # abort(): no lingering close handshake for a peer that may never read.
            writer.transport.abort()

    async def _answer(self, reader: asyncio.StreamReader, fd: int) -> dict[str, Any]:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                data = await _read_request(reader)
        except TimeoutError:
            return failure(f"no complete request within {REQUEST_TIMEOUT:g} s")
        if data is None:
            return failure(f"request longer than {MAX_REQUEST} bytes")
        try:
            request = decode(data)
        except ProtocolError as exc:
            return failure(f"bad request: {exc}")
        name = request.get("cmd")
        command = self.commands.get(name) if isinstance(name, str) else None
        if command is None:
            known = ", ".join(sorted(self.commands))
            return failure(f"unknown command {name!r} (known: {known})")
        if name in NOT_BEGUN_WHEN_HUNG_UP and _hung_up(fd):
            why = "its client hung up before the request was read"
            _log.warning(f"{name} not started", reason=why)
            return failure("the client hung up")
        prompt = name in PROMPT_COMMANDS
        if not prompt:
            if self._waiting >= self._max_waiting:
                busy = f"busy: {self._max_waiting} control connections open"
                return failure(busy, transient=True)
            self._waiting += 1
        try:
            if name in LEFT_WHEN_HUNG_UP:
                return await _unless_hung_up(command(request), fd)
            return await command(request)
        except Exception as exc:
            _log.exception("control command failed", command=name)
            return failure(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if not prompt:
                self._waiting -= 1

    def _refuse(self, peer: tuple[int, int, int] | None) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= _REFUSAL_LOG_INTERVAL:
            self._refusal_logged = now
            pid, uid = (peer[0], peer[1]) if peer is not None else (None, None)
            _log.warning(
                "control connection refused", peer_pid=pid, peer_uid=uid, refused=self._refused
            )


#: The descriptor of the connection whose request the current task answers.
_connection_fd: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "aiodaemon_control_connection", default=None
)


def _hung_up(fd: int) -> bool:
    """Whether the client on ``fd`` has closed its end (see :func:`_hang_up_poller`)."""
    return bool(_hang_up_poller(fd).poll(0))


def _hang_up_poller(fd: int) -> select.poll:
    """A poll object whose ``poll()`` reports ``POLLHUP`` on ``fd``: the client closed its end.

    A client that only shut down its writing half (end of its request) has
    not hung up. A poll: the transport owns the fd's reader, and no loop event
    says POLLHUP.
    """
    poller = select.poll()
    # No event asked for: POLLHUP is reported anyway.
    poller.register(fd, 0)
    return poller


async def _unless_hung_up(work: Awaitable[dict[str, Any]], fd: int) -> dict[str, Any]:
    """Await ``work``, or stop awaiting it once the client on ``fd`` has hung up.

    Hung up is ``POLLHUP``: the client closed its end. A client that only
    shut down its writing half (end of its request) still waits for the answer.
    ``work`` runs in this task, the connection's: the reload tracker waits for
    it to write its answer at a shutdown.
    """
    connection = asyncio.current_task()
    assert connection is not None
    hung_up = False

    async def watch() -> None:
        nonlocal hung_up
        poller = _hang_up_poller(fd)
        while not poller.poll(0):  # noqa: ASYNC110
            await asyncio.sleep(_HANG_UP_CHECK)
        hung_up = True
        cancel_task(connection)

    watcher = own_task(watch(), "aiodaemon-control-hang-up")
    try:
        return await work
    except asyncio.CancelledError:
        # Ours alone (not also the shutdown's): the client is gone, nobody to answer.
        if hung_up and connection.uncancel() == 0:
            return failure("the client hung up")
        raise
    finally:
        cancel_task(watcher)


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """The request line (or everything up to end of file); None when it is too long."""
    data = b""
    while b"\n" not in data and len(data) <= MAX_REQUEST:
        chunk = await reader.read(MAX_REQUEST + 1 - len(data))
        if not chunk:
            break
        data += chunk
    # The line's own length counts, newline included: bytes after it (a second
    # request, which is ignored) arriving in the same read do not make it too long.
    line, newline, _ = data.partition(b"\n")
    return None if len(line) + len(newline) > MAX_REQUEST else line


def _peer_credentials(writer: asyncio.StreamWriter) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the connected peer, None when the kernel will not say."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return None
    pid, uid, gid = _PEERCRED.unpack(raw)
    return pid, uid, gid


def boot_clock() -> float:
    """Seconds since boot, suspended time included, untouched by steps of the system clock.

    ``uptime`` agrees with the pidfile fallback of ``status`` (from /proc,
    counted the same way) and with ``ps -o etime``; an NTP step or ``date -s``
    moves neither.
    """
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(slots=True)
class DaemonCommands:
    """The ``status``, ``reload`` and ``stop`` commands, answered from the daemon's own state.

    Args:
        state: the lifecycle state's name right now.
        sockets: the ``listen=`` sockets and the health socket, by the name status shows.
        reloads: where reload runs report their results.
        request_reload: ask the lifecycle for a reload (as SIGHUP would).
        version: aiodaemon's version, read before any privilege drop.
        request_stop: ask for the graceful shutdown SIGTERM begins; None: no ``stop``.
        stop_budget: seconds within which the process is gone once asked to stop
            (drain delay, shutdown budget, exit grace), told in ``stop``'s answer.
        socket_files: the unix socket files the daemon would remove at its exit
            (path -> (st_dev, st_ino)), told in ``stop``'s answer: a ``stop``
            that has to SIGKILL it removes them instead.
        running_hook: the hook running now (its kind, its name and the
            ``time.monotonic()`` it began), or None: ``status`` names it, and
            how long it has run.
        configured: each socket's address option, by name: the path of a unix
            socket bound through ``/proc/self/fd`` is shown as configured.
        ready: whether the daemon has reported ready (it stays so while it
            stops): a ``start`` that waited for a daemon still starting tells a
            stop after its start from a start that failed.
    """

    state: Callable[[], str]
    sockets: Mapping[str, socket.socket]
    reloads: ReloadTracker
    request_reload: Callable[[], None]
    version: str
    #: the boot clock when the daemon began to run (see :func:`boot_clock`).
    started: float = field(default_factory=boot_clock)
    request_stop: Callable[[], None] | None = None
    stop_budget: Callable[[], float] | None = None
    socket_files: Callable[[], Mapping[str, tuple[int, int]]] | None = None
    running_hook: Callable[[], tuple[str, str, float] | None] | None = None
    ready: Callable[[], bool] | None = None
    #: each socket's address option (a long unix path is bound through /proc/self/fd).
    configured: Mapping[str, object] = field(default_factory=dict)
    #: whether the ``listen=`` sockets came from the service manager (socket
    #: activation): a ``restart`` could not get them back, so it refuses.
    activated: bool = False
    #: whether the socket named "health" is the health endpoint, not a
    #: ``listen=`` one of that name: a ``restart`` names the flag that keeps it.
    health_endpoint: bool = False
    #: how many reload hooks the program has: a reload without any only
    #: reopens the log files, which the ``reload`` command says.
    reload_hooks: Callable[[], int] | None = None
    #: where each socket listens, read while all are open: a draining daemon's
    #: closed listener still reports its address, as status promises.
    addresses: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.addresses = {
            name: sockname(sock, self.configured.get(name)) for name, sock in self.sockets.items()
        }

    def commands(self) -> dict[str, Command]:
        """The commands to serve, by name."""
        commands: dict[str, Command] = {"status": self.status, "reload": self.reload}
        if self.request_stop is not None:
            commands["stop"] = self.stop
        return commands

    async def status(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer ``status``: state, pid, uptime, sockets, last reload, version."""
        state = self.state()
        last = self.reloads.last
        running = None if self.running_hook is None else self.running_hook()
        return {
            "v": VERSION,
            "ok": True,
            # "stopped" lasts only while the last steps of the exit run.
            "state": "stopping" if state == "stopped" else state,
            "pid": os.getpid(),
            "uptime": round(boot_clock() - self.started, 3),
            "sockets": dict(self.addresses),
            "last_reload": None if last is None else last.as_json(),
            "version": self.version,
            # Beyond the keys --json promises. A start waiting for this daemon
            # to be ready, finding it stopping, learns whether it was.
            "ready": self.ready is not None and self.ready(),
            "socket_activated": self.activated,
            "health_endpoint": self.health_endpoint,
            # The plain form names the hook the last reload failed in, and a hook that hangs.
            "last_reload_hook": None if last is None else last.hook,
            "hook": None
            if running is None
            else {
                "name": f"{running[0]} hook {running[1]}",
                "seconds": round(time.monotonic() - running[2], 3),
            },
        }

    async def reload(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer ``reload``: run one (or join the queued one) and wait for its result."""
        timeout = request.get("timeout", 60.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            return failure(f"timeout must be a positive number of seconds, not {timeout!r}")
        # min() first: float() of a 400-digit integer overflows.
        timeout = float(min(timeout, MAX_WAIT))
        if self.state() in ("stopping", "stopped"):
            return failure("the daemon is stopping; nothing was reloaded")
        future = self.reloads.request()
        self.request_reload()
        try:
            result = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            if self.state() == "starting":
                # Queued until the startup hooks return: not a reload that hangs.
                after = seconds_shown(timeout)
                return failure(
                    f"still starting after {after} s; the reload runs once it is ready",
                    timeout=True,
                )
            return failure(f"still reloading after {seconds_shown(timeout)} s", timeout=True)
        except ReloadAbandoned as exc:
            return failure(str(exc))
        reload = result.as_json()
        if result.hook is not None:
            # The `reload` command names it: one of several hooks failed.
            reload["hook"] = result.hook
        if result.exiting is not None:
            # Not in status's last_reload (whose keys are fixed): only this
            # answer's reader, the `reload` command, needs to tell the daemon
            # is shutting down rather than still running.
            reload["exiting"] = result.exiting
        elif self.state() in ("stopping", "stopped"):
            # A stop began while the hooks ran: the daemon is not "still running".
            reload["stopping"] = True
        if self.reload_hooks is not None:
            reload["hooks"] = self.reload_hooks()
        return {"v": VERSION, "ok": True, "reload": reload}

    # --- stop ----------------------------------------------------------------------

    async def stop(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer ``stop``: begin the graceful shutdown, or say it has begun already.

        Idempotent, unlike a second SIGTERM (which forces the exit): any number
        of ``aiodaemon stop`` may ask, and the shutdown hooks still finish. With
        ``"watch": true`` the connection is also told, after this answer, how
        the process ended (see :func:`._exit_notice.tell_exit`).
        """
        assert self.request_stop is not None  # served only with a requester
        state = self.state()
        already = state in ("stopping", "stopped")
        if not already:
            _log.info("stop requested", by="control socket")
            self.request_stop()
        answer: dict[str, Any] = {
            "v": VERSION,
            "ok": True,
            "already_stopping": already,
            "pid": os.getpid(),
        }
        if self.stop_budget is not None:
            # `aiodaemon stop` waits this long before its SIGKILL unless told otherwise.
            answer["exits_within"] = self.stop_budget()
        if self.socket_files is not None:
            files = self.socket_files()
            if files:
                answer["socket_files"] = {path: list(inode) for path, inode in files.items()}
        fd = _connection_fd.get()
        if request.get("watch") is True and fd is not None:
            from ._exit_notice import watch_exit

            # Told, after this answer, how the process ended (see _exit_notice.tell_exit).
            answer["watched"] = watch_exit(fd)
        return answer
