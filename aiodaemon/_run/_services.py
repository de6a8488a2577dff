"""Run-phase services: the extension point for parts that live beside the program.

A service (the control socket server, the health endpoint, the upgrade
hand-off, ``on_signal`` handlers) is built by a factory listed in
:data:`SERVICE_FACTORIES` and plugs into the run phase without editing it:

* ``factory(runtime) -> Service | None`` runs in the daemon after the
  signal handlers are installed (return None when its option is off);
  ``runtime`` is a :class:`RuntimeHandle`.
* :meth:`Service.start` runs next, before the startup hooks; raising there
  fails the startup like a startup hook would.
* The shutdown sequence (:mod:`._shutdown`) calls, on every service in
  registration order: :meth:`~Service.not_ready` (step 1, the instant
  shutdown begins), :meth:`~Service.stop_accepting` (step 3, after the drain
  delay), :meth:`~Service.wait_finished` (step 4), then the shutdown hooks
  and lifespan exits run (step 5), what is left is cancelled and the
  default executor shut down (step 6), and last :meth:`~Service.close`.
  Steps 3 to the end share ``shutdown_timeout``.
* Tasks a service starts with :meth:`RuntimeHandle.spawn` survive step 6 and
  are cancelled after :meth:`~Service.close`: a control socket answers
  ``status`` until the very end.

Factories are named as ``"module:function"`` strings, imported before the
privilege drop (a chroot may hide the interpreter's files afterwards). The
framework's own services (control socket, connection draining, health) are
built the same way, first (:mod:`._builtin`). A resource a service needs from
the acquire phase (a bound socket) is entered into ``Acquired.stack`` there
and reaches the runtime through ``DaemonParts``.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._prefork._config import Options
    from ._context import Context
    from ._hooks import Hooks
    from ._reloads import ReloadResult
    from ._state import State

__all__ = [
    "CONTROL_CONNECTION",
    "SERVICE_FACTORIES",
    "RuntimeHandle",
    "Service",
    "ServiceFactory",
    "load_factories",
]

#: ``"module:function"`` of every service factory, in start order. Add yours here.
SERVICE_FACTORIES: tuple[str, ...] = ("aiodaemon._run._signal_handlers:signal_service",)
#: The name of a control connection's task. Step 6 leaves these to the control
#: service's :meth:`~Service.close`, which answers them first: a ``status``
#: cut there fell back to the pidfile, which said "running" while stopping.
CONTROL_CONNECTION = "aiodaemon-control-connection"


class RuntimeHandle(Protocol):
    """What a service sees of the runtime."""

    #: the validated options.
    options: Options
    #: seconds to keep accepting after a stop request (step 2); a service may
    #: change it (serving sets ``drain_delay``, an upgrade sets 0).
    drain_delay: float
    #: what the program registered (hooks, ``on_signal`` handlers, checks).
    hooks: Hooks

    @property
    def shutdown_deadline(self) -> float | None:
        """The ``time.monotonic()`` end of the shutdown budget, once step 2 is over."""

    @property
    def context(self) -> Context:
        """The Context given to hooks and ``main``."""

    @property
    def state(self) -> State:
        """The lifecycle state right now."""

    @property
    def ready(self) -> bool:
        """Whether readiness has been reported (launcher released, ``READY=1`` sent)."""

    @property
    def last_reload(self) -> ReloadResult | None:
        """The result of the last finished reload run, None before the first."""

    def add_state_listener(self, listener: Callable[[State, State], None]) -> None:
        """Call ``listener(old, new)`` on the loop after every state change."""

    def request_shutdown(self, exit_code: int = 0) -> None:
        """Begin a graceful shutdown, as SIGTERM would, ending with ``exit_code``."""

    def exit_requested(self, exc: BaseException, by: str) -> None:
        """``by`` raised SystemExit or KeyboardInterrupt: a graceful shutdown with its status."""

    def request_reload(self) -> asyncio.Future[ReloadResult]:
        """Request a reload, as SIGHUP would.

        Returns:
            A future of the result of the first run that starts after the request;
            it fails with ``ReloadAbandoned`` when the daemon stops first.
        """

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a service task (kept until services close; failing stops the daemon)."""

    def add_forced_exit_step(self, step: Callable[[], None]) -> None:
        """Run ``step()`` at a forced exit, inside a signal handler.

        It must be quick and non-blocking: plain system calls only (an
        ``unlink``), no logging, no locks, no thread joins. Exceptions are ignored.
        """


class Service:
    """Base class of a run-phase service; every step does nothing until overridden."""

    #: a short name for the log.
    name = "service"

    async def start(self) -> None:
        """Begin serving; runs before the startup hooks."""

    def not_ready(self) -> None:
        """Shutdown step 1: from now on report not-ready (``/readyz`` 503)."""

    async def stop_accepting(self) -> None:
        """Shutdown step 3: stop accepting new connections."""

    async def wait_finished(self) -> None:
        """Shutdown step 4: return once in-flight work has finished."""

    async def close(self) -> None:
        """Release what the service holds; the last step of the shutdown sequence."""


#: Builds a service for a run, or returns None when it is not configured.
ServiceFactory = Callable[[RuntimeHandle], Service | None]


def load_factories(names: tuple[str, ...] | None = None) -> list[ServiceFactory]:
    """Import every factory named ``"module:function"`` (before the privilege drop)."""
    factories = []
    for name in SERVICE_FACTORIES if names is None else names:
        module, _, attr = name.partition(":")
        factories.append(getattr(importlib.import_module(module), attr))
    return factories
