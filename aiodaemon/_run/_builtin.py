"""The framework's own run-phase services: control socket, connection draining, health.

They plug into the shutdown sequence through :class:`._services.Service`
like any other service (see :mod:`._shutdown` for the steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

import structlog

from .._prefork._config import HEALTH_SOCKET
from .._version import __version__
from ._services import RuntimeHandle, Service
from ._state import Event

if TYPE_CHECKING:
    from .._prefork._adopt import SuccessorChannel
    from ._control_server import ControlServer
    from ._health import HealthServer
    from ._runtime import Runtime
    from ._serving import Serving

__all__ = ["ControlService", "HealthService", "ServingService", "builtin_factories"]

_log = structlog.get_logger("aiodaemon")


class ControlService(Service):
    """Answers ``status`` and ``reload`` on the control socket from startup to the very end."""

    name = "control"

    def __init__(
        self,
        server: ControlServer,
        path: str,
        *,
        defer_to: list[Callable[[], Awaitable[None]]] | None = None,
        budget_end: Callable[[], float | None] | None = None,
    ) -> None:
        self.server = server
        self.path = path
        self._serving = False
        #: the ``time.monotonic()`` end of the shutdown budget, once known.
        self._budget_end = budget_end
        # An upgrade's successor: clients must see the old daemon in SO_PEERCRED
        # (listen() decides it) until the pidfile names us.
        self._defer_to = defer_to

    async def start(self) -> None:
        """Begin answering (state "starting" first); a failure here is not fatal."""
        if self._defer_to is not None:
            self._defer_to.append(self._start_now)
            return
        await self._start_now()

    async def _start_now(self) -> None:
        try:
            await self.server.start()
        except OSError:
            # Signals still stop and reload the daemon; the CLI falls back to them.
            _log.exception("control socket not served", path=self.path)
            return
        self._serving = True

    async def close(self) -> None:
        """Answer the requests already made, then stop: the last step of the shutdown sequence."""
        if self._serving:
            from ._control_server import CLOSE_GRACE

            await self.server.close(_within_half_left(CLOSE_GRACE, self._budget_end))


def _within_half_left(wait: float, budget_end: Callable[[], float | None] | None) -> float:
    """``wait``, or half of what is left of the shutdown budget if that is less.

    For a last wait on clients (the control socket's, the health port's after a
    hand-over): the steps after it need the rest.
    """
    end = None if budget_end is None else budget_end()
    if end is None:
        return wait
    return max(0.0, min(wait, (end - time.monotonic()) / 2))


class ServingService(Service):
    """Stops ``ctx.start_server``/``ctx.track`` servers and awaits their connections."""

    name = "serving"

    def __init__(self, runtime: RuntimeHandle, serving: Serving) -> None:
        self.runtime = runtime
        self.serving = serving

    async def stop_accepting(self) -> None:
        """Close the listening sockets of tracked servers: new connections are refused."""
        self.serving.stop_accepting()

    async def wait_finished(self) -> None:
        """Await tracked connections; they get half the budget, the shutdown hooks the rest."""
        deadline = self.runtime.shutdown_deadline
        if deadline is None:  # pragma: no cover - set before step 3 begins
            deadline = time.monotonic()
        await self.serving.wait_closed(deadline - self.runtime.options.shutdown_timeout / 2)


class HealthService(Service):
    """``/livez`` and ``/readyz`` from the start of the startup hooks to the end of shutdown."""

    name = "health"

    def __init__(
        self,
        server: HealthServer,
        *,
        defer_to: list[Callable[[], Awaitable[None]]] | None = None,
        budget_end: Callable[[], float | None] | None = None,
    ) -> None:
        self.server = server
        # An upgrade's successor: probes of the shared socket go to the old
        # daemon, which is ready, until the hand-over (its "starting" 503s
        # would take a serving address out of rotation).
        self._defer_to = defer_to
        #: the ``time.monotonic()`` end of the shutdown budget, once known.
        self._budget_end = budget_end

    async def start(self) -> None:
        """Begin answering (``/readyz`` says 503 until ready)."""
        if self._defer_to is not None:
            self._defer_to.append(self.server.start)
            return
        await self.server.start()

    async def wait_finished(self) -> None:
        """After an upgrade's hand-over: probes already connected get their answer, in budget."""
        from ._health import REQUEST_TIMEOUT

        # A probe that never sends its request must not take the hooks' time.
        wait = _within_half_left(2 * REQUEST_TIMEOUT, self._budget_end)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.server.wait_answered()

    async def close(self) -> None:
        """Stop answering: the last step of the shutdown sequence."""
        self.server.close()


def builtin_factories() -> list[Callable[[Runtime], Service | None]]:
    """Factories of the framework's services, started before any other service."""
    return [_forced_exit_files, _control, _serving, _health, _upgrade]


def _forced_exit_files(runtime: Runtime) -> None:
    """At a forced exit, remove the socket files we own, as the normal close would.

    Each step is a ``lstat`` and an ``unlink`` (no lock, no logging: they run
    inside a signal handler, see :mod:`._forced`), and reads the ownership at
    that moment: a file handed to an upgrade's successor (disowned) stays, one
    a successor took over (owned) goes, and one replaced by another inode stays.
    """
    listeners, control = runtime.parts.listeners, runtime.parts.control
    if listeners is None and control is None:
        return
    # Loaded already by whatever bound those sockets, before any chroot or drop
    # (an upgrade's successor may bind none, and load it: it runs no chroot and
    # reads its own files); imported here, never in the signal handler.
    from .._prefork._unixbind import unlink_if_ours

    if listeners is not None:
        # The unix listen= sockets and a unix health socket.

        def unlink_listeners() -> None:
            for path, identity in listeners.owned_unix_files().items():
                unlink_if_ours(path, identity)

        runtime.add_forced_exit_step(unlink_listeners)
    if control is not None:

        def unlink_control() -> None:
            identity, path = control.identity, control.visible_path
            if identity is not None and path is not None:
                unlink_if_ours(path, identity)

        runtime.add_forced_exit_step(unlink_control)


def _control(runtime: Runtime) -> Service | None:
    control = runtime.parts.control
    if control is None:
        return None
    from ._control_server import ControlServer, DaemonCommands

    # status lists the health socket too (its real port), and `stop`
    # asks for SIGTERM's graceful shutdown without risking a second SIGTERM.
    sockets = dict(runtime.context.sockets)
    if runtime.options.health is not None and runtime.parts.listeners is not None:
        sockets[HEALTH_SOCKET] = runtime.parts.listeners[HEALTH_SOCKET]
    commands = DaemonCommands(
        state=lambda: runtime.reported_state.value,
        sockets=sockets,
        reloads=runtime.reloads,
        request_reload=runtime.ask_reload,
        version=__version__,
        request_stop=lambda: _request_stop(runtime),
        stop_budget=lambda: _stop_budget(runtime),
        socket_files=lambda: _socket_files(runtime),
        running_hook=lambda: runtime.hook_running,
        configured=runtime.options.socket_addresses(),
        ready=lambda: runtime.ready,
        activated=runtime.parts.listeners is not None and runtime.parts.listeners.activated,
        health_endpoint=runtime.options.health is not None,
        reload_hooks=lambda: len(runtime.hooks.reload),
    )
    server = ControlServer(control.sock, {os.geteuid()}, commands.commands())
    takeover = getattr(runtime.parts.pipe, "on_takeover", None)
    return ControlService(
        server, control.path, defer_to=takeover, budget_end=lambda: runtime.shutdown_deadline
    )


def _request_stop(runtime: Runtime) -> None:
    """``aiodaemon stop`` over the control socket: SIGTERM's graceful shutdown."""
    if not runtime.ready:
        # As after a SIGTERM: a daemon stopped before it was ready did not start.
        runtime.outcome.fail("stopped by `aiodaemon stop` before it was ready")
    runtime.request_shutdown()


def _stop_budget(runtime: Runtime) -> float:
    """Seconds from a stop request to the process's end at the latest."""
    from ._process_end import EXIT_GRACE  # loaded with the runtime already

    return runtime.drain_delay + runtime.options.shutdown_timeout + EXIT_GRACE


def _socket_files(runtime: Runtime) -> dict[str, tuple[int, int]]:
    """The unix socket files this process removes at its exit, by their paths on the host."""
    listeners = runtime.parts.listeners
    if listeners is None or runtime.options.chroot is not None:
        return {}  # a chrooted daemon knows them by their paths inside the jail
    return listeners.owned_unix_files()


def _serving(runtime: Runtime) -> Service:
    return ServingService(runtime, runtime.serving)


def _health(runtime: Runtime) -> Service | None:
    if runtime.options.health is None:
        return None
    from ._health import HealthServer  # imported only by daemons that serve it

    assert runtime.parts.listeners is not None  # acquire bound the health socket
    server = HealthServer(
        runtime.parts.listeners[HEALTH_SOCKET],
        state=lambda: runtime.reported_state,
        reported_ready=lambda: runtime.ready,
        checks=runtime.hooks.readiness,
        context=runtime.context,
    )
    pipe = runtime.parts.pipe
    if runtime.hooks.readiness and hasattr(pipe, "handoff"):
        # An upgrade's successor takes over only once its /readyz would say 200.
        from .._prefork._adopt import SuccessorChannel
        from ._takeover import readiness_verdict

        assert isinstance(pipe, SuccessorChannel)
        pipe.readiness = lambda: readiness_verdict(server)
    return HealthService(
        server,
        defer_to=getattr(runtime.parts.pipe, "on_takeover", None),
        budget_end=lambda: runtime.shutdown_deadline,
    )


def _upgrade(runtime: Runtime) -> Service:
    """SIGUSR2 and the ``upgrade`` command (see :mod:`._upgrade`)."""
    from .._prefork._acquire import _sockets_to_open
    from .._prefork._detach import stop_closing_in_forked_children
    from ._upgrade import Upgrader, UpgradeTarget
    from ._upgrade_service import UpgradeService, preload_when_running

    by_name = {service.name: service for service in runtime.services}
    control_service = by_name.get("control")
    control = control_service.server if isinstance(control_service, ControlService) else None
    health_service = by_name.get("health")
    health = health_service.server if isinstance(health_service, HealthService) else None

    async def stop_accepting() -> None:
        # The successor accepts from the same listening sockets now.
        runtime.serving.stop_accepting(handed_over=True)
        if health is not None:
            health.stop_accepting()
        if control is not None:
            # The upgrade command's reply still goes out on its connection.
            control.stop_accepting()

    def rollback() -> None:
        if control is not None:
            control.claim_peer_credentials()

    def handed_over(successor: int) -> None:
        # The successor serves on the socket files now: ours to leave.
        if runtime.parts.listeners is not None:
            runtime.parts.listeners.disown_unix_files()
        if runtime.parts.control is not None:
            runtime.parts.control.disown_file()
        pidfile = runtime.parts.pidfile
        if pidfile is not None and pidfile.fd >= 0:
            # The lock is the successor's now (the open file we share): our
            # share kept it locked while we drained. A successor stopped
            # meanwhile that could only empty the file (a root-only directory)
            # left it locked and empty: "already running", nothing started.
            stop_closing_in_forked_children([pidfile.fd])
            pidfile.close()
        # The successor already accepts: no load balancer needs the delay.
        runtime.drain_delay = 0.0
        runtime.request_shutdown()

    def log_file() -> tuple[str, int] | None:
        # A copy made at the spawn: a reopen (SIGUSR1) may change the fd, even meanwhile.
        from .._prefork._logsinks import FileSink

        for sink in runtime.parts.logs.sinks:
            if isinstance(sink, FileSink):
                return sink.path, sink.dup()
        return None

    target = UpgradeTarget(
        pidfile=runtime.parts.pidfile,
        listeners=runtime.parts.listeners,
        listen=_sockets_to_open(runtime.options),
        control=runtime.parts.control,
        notifier=runtime.parts.notifier,
        detached=not runtime.parts.foreground,
        chroot=runtime.options.chroot is not None,
        state=lambda: runtime.reported_state.value,
        stop_accepting=stop_accepting,
        handed_over=handed_over,
        rollback=rollback,
        log_file=log_file,
        logs=runtime.parts.logs,
        signals=tuple(runtime.hooks.signals),
        shutdown_timeout=runtime.options.shutdown_timeout,
        spawn=runtime.spawn,
        records=_records_at(runtime),
    )
    upgrader = Upgrader(target)
    runtime.add_forced_exit_step(upgrader.kill_at_forced_exit)
    runtime.add_state_listener(preload_when_running)
    # An upgrade's successor watches the old daemon from the start (see _takeover).
    successor = runtime.parts.pipe if hasattr(runtime.parts.pipe, "handoff") else None
    service = UpgradeService(
        upgrader,
        None if control is None else control.commands,
        cast("SuccessorChannel | None", successor),
        # A SIGHUP during an upgrade reopens at once and reloads whoever serves after it.
        reload=lambda: runtime.dispatch(Event.RELOAD),
        reopen=lambda: runtime.dispatch(Event.REOPEN_LOGS),
        # Given back when an upgrade fails; a terminal's hang-up is no reload to hold.
        sighup=runtime.on_sighup,
        hung_up=runtime.terminal_hung_up,
        # Its failure, else what began the stop ("main returned"): never a bare "stopped".
        failure=lambda: runtime.outcome.message or runtime.stop_cause,
        budget_end=lambda: runtime.shutdown_deadline,
        not_ready=lambda why: runtime.outcome.fail(
            f"{runtime.stop_cause or 'stopped'} before it was ready ({why})"
        ),
    )
    if successor is not None:
        runtime.add_state_listener(service.state_changed)
    return service


def _records_at(runtime: Runtime) -> str | None:
    """Where the log records go ("in /var/log/app.jsonl"); None: nowhere.

    An upgrade's new process logs there too (it inherits the log file, and
    an upgrade keeps the options that name it).
    """
    options = runtime.options
    places = [f"in {options.log_file}"] if options.log_file is not None else []
    if options.syslog is not None:
        places.append("in syslog")
    if places:
        return " and ".join(places)
    if options.stderr is not None:
        return f"in {options.stderr}"
    # Detached without a log file, syslog or stderr file, they go nowhere.
    return "on stderr" if runtime.parts.foreground else None
