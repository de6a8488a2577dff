"""The framework's own run-phase services: control socket, connection draining, health.

They plug into the shutdown sequence through :class:`._services.Service`
like any other service (see :mod:`._shutdown` for the steps).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import structlog

from ._config import HEALTH_SOCKET
from ._services import RuntimeHandle, Service

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._control_server import ControlServer
    from ._health import HealthServer
    from ._runtime import Runtime
    from ._serving import Serving

__all__ = ["ControlService", "HealthService", "ServingService", "builtin_factories"]

_log = structlog.get_logger("aiodaemon")


class ControlService(Service):
    """Answers ``status`` and ``reload`` on the control socket from startup to the very end."""

    name = "control"

    def __init__(self, server: ControlServer, path: str) -> None:
        self.server = server
        self.path = path
        self._serving = False

    async def start(self) -> None:
        """Begin answering (state "starting" first); a failure here is not fatal."""
        try:
            await self.server.start()
        except OSError:
            # Signals still stop and reload the daemon; the CLI falls back to them.
            _log.exception("control socket not served", path=self.path)
            return
        self._serving = True

    async def close(self) -> None:
        """Stop answering: the last step of the shutdown sequence."""
        if self._serving:
            await self.server.close()


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

    def __init__(self, server: HealthServer) -> None:
        self.server = server

    async def start(self) -> None:
        """Begin answering (``/readyz`` says 503 until ready)."""
        await self.server.start()

    async def close(self) -> None:
        """Stop answering: the last step of the shutdown sequence."""
        self.server.close()


def builtin_factories() -> list[Callable[[Runtime], Service | None]]:
    """Factories of the framework's services, started before any other service."""
    return [_control, _serving, _health]


def _control(runtime: Runtime) -> Service | None:
    control = runtime.parts.control
    if control is None:
        return None
    from . import __version__
    from ._control_server import ControlServer, DaemonCommands

    commands = DaemonCommands(
        state=lambda: runtime.state.value,
        sockets=runtime.context.sockets,
        reloads=runtime.reloads,
        request_reload=runtime.ask_reload,
        version=__version__,
    )
    server = ControlServer(control.sock, {os.geteuid()}, commands.commands())
    return ControlService(server, str(control.path))


def _serving(runtime: Runtime) -> Service:
    return ServingService(runtime, runtime.serving)


def _health(runtime: Runtime) -> Service | None:
    if runtime.options.health is None:
        return None
    from ._health import HealthServer  # imported only by daemons that serve it

    assert runtime.parts.listeners is not None  # acquire bound the health socket
    return HealthService(
        HealthServer(
            runtime.parts.listeners[HEALTH_SOCKET],
            state=lambda: runtime.state,
            reported_ready=lambda: runtime.ready,
            checks=runtime.hooks.readiness,
            context=runtime.context,
        )
    )
