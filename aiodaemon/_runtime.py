"""Run phase: the event loop, signals as lifecycle events, hooks, reload and shutdown.

Every event (signal, request, hook result) goes through :meth:`Runtime.dispatch`,
which asks the state machine (:mod:`._state`) and carries out its answer;
nothing else changes the state. Loop signal handlers only feed events; once
shutdown begins, a plain handler (:mod:`._forced`) makes a second stop signal
exit at once.

The run, in order: signal handlers; services (:mod:`._services`) built and
started; startup hooks and lifespan setups in registration order; ready;
``main``. The shutdown sequence, whatever began it (a signal, a request,
``main`` returning, a failed startup hook):

1. ``not_ready`` — ``STOPPING=1`` and every service's ``not_ready()``;
2. ``drain_delay`` — keep accepting for :attr:`Runtime.drain_delay` seconds
   (only once ready was reported: nobody was sent to a daemon never ready);
3. ``stop_accepting`` — every service's ``stop_accepting()``, after the
   startup hooks still running (a stop during startup) were cancelled;
4. ``wait_finished`` — every service's ``wait_finished()``;
5. ``hooks`` — shutdown hooks and lifespan exits in reverse registration
   order (shutdown hooks whenever startup began; a lifespan's exit only if
   its setup completed);
6. ``cancel_rest`` — every remaining task is cancelled and awaited;
7. ``close`` — every service's ``close()``, then the service tasks end.

Steps 3-7 share one budget, ``shutdown_timeout``, counted from the end of
step 2; past it the stuck tasks are logged with their await chain and the
daemon exits with status 4. A backstop thread does the same if sync code
blocks the loop.

Extension points, for services (:class:`._services.RuntimeHandle`):
:attr:`Runtime.drain_delay`, :meth:`Runtime.add_state_listener`,
:meth:`Runtime.request_shutdown`, :meth:`Runtime.request_reload` (a future of
the :class:`._reloads.ReloadResult` of the first run that started after
the request, or :class:`._reloads.ReloadAbandoned` when the daemon stops first),
:meth:`Runtime.spawn`, :meth:`Runtime.add_forced_exit_step`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from ._builtin import ControlService, HealthService, ServingService
from ._config import HEALTH_SOCKET
from ._context import Context
from ._forced import ForcedExit
from ._hooks import HookError, Hooks, Lifespan, MainTarget, call_async, describe
from ._loop import await_chain, new_event_loop, sockname
from ._outcome import Outcome
from ._reloads import ReloadResult, ReloadTracker
from ._serving import Serving
from ._state import HANDLED_SIGNALS, Action, Event, Lifecycle, State, event_for_signal
from .exceptions import ExitCode, StartupError

if TYPE_CHECKING:
    import socket

    from ._config import Options
    from ._control_socket import ControlSocket
    from ._logging import LogTargets, LogWriter
    from ._pidfile import Pidfile
    from ._readiness import ReadinessPipe
    from ._services import Service, ServiceFactory
    from ._sockets import Listeners
    from ._systemd import Notifier

__all__ = ["DaemonParts", "Hooks", "Runtime", "run_daemon"]

_log = structlog.get_logger("aiodaemon")

_NO_RELOAD_WHILE_STOPPING = "the daemon is stopping; the reload did not run"

#: Names of the framework's own tasks, never cancelled by the shutdown sequence.
_LIFECYCLE_TASK = "aiodaemon-lifecycle"
_STOP_TASK = "aiodaemon-stop"


@dataclass(slots=True)
class DaemonParts:
    """Everything acquired before the loop exists, handed to the run phase."""

    options: Options
    listeners: Listeners | None
    pidfile: Pidfile | None
    pipe: ReadinessPipe
    notifier: Notifier | None
    logs: LogWriter
    log_targets: LogTargets
    foreground: bool
    factories: list[ServiceFactory] = field(default_factory=list)
    control: ControlSocket | None = None


def run_daemon(main: MainTarget, hooks: Hooks, parts: DaemonParts) -> int:
    """Run the program to its end and return the exit status.

    Whatever happens, the launcher has its verdict when this returns; the
    caller's stack then releases the rest (listeners, log drain, pidfile).
    """
    runtime = Runtime(main, hooks, parts)
    try:
        loop = new_event_loop(parts.options.uvloop)
    except StartupError as exc:
        _log.error("startup failed", error=str(exc))
        runtime.outcome.fail(str(exc), exc, exc.exit_code)
    else:
        try:
            asyncio.set_event_loop(loop)
            task = loop.create_task(runtime.live(), name=_LIFECYCLE_TASK)
            loop.run_until_complete(task)
        except Exception as exc:
            # A bug of ours must still end in a logged traceback, a released
            # launcher and a removed pidfile, never in a silent death.
            _log.exception("internal error")
            runtime.outcome.fail(f"internal error: {type(exc).__name__}: {exc}", exc)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return runtime.finish()


class Runtime:
    """One run of the daemon on its event loop; see the module docstring."""

    def __init__(self, main: MainTarget, hooks: Hooks, parts: DaemonParts) -> None:
        self.main = main
        self.hooks = hooks
        self.parts = parts
        self.options = parts.options
        self.lifecycle = Lifecycle()
        self.outcome = Outcome()
        self.reloads = ReloadTracker()
        self.forced = ForcedExit(parts.pipe, parts.pidfile)
        self.services: list[Service] = []
        #: seconds to keep accepting after a stop request (shutdown step 2).
        self.drain_delay = self.options.drain_delay
        #: ``ctx.start_server``/``ctx.track``: drained by a built-in service.
        self.serving = Serving()
        #: ``time.time()`` when the run phase began.
        self.started_at = time.time()
        self._state_listeners: list[Callable[[State, State], None]] = []
        self._ready = False
        self._context: Context | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_task: asyncio.Task[None] | None = None
        # Lifespans whose setup completed, with their suspended generators.
        self._entered: dict[Lifespan, AsyncGenerator[Any, None]] = {}
        # The loop keeps only weak references to tasks: ours must not vanish mid-run.
        self._framework_tasks: set[asyncio.Task[Any]] = set()
        self._service_tasks: set[asyncio.Task[Any]] = set()
        self._deadline: float | None = None
        # The loop thread and the backstop thread may both time out; one exits.
        self._exit_claim = threading.Lock()

    # --- what services see (RuntimeHandle) ------------------------------------------

    @property
    def context(self) -> Context:
        """The Context given to hooks and ``main``."""
        assert self._context is not None, "the context exists once the loop runs"
        return self._context

    @property
    def state(self) -> State:
        """The lifecycle state right now."""
        return self.lifecycle.state

    @property
    def ready(self) -> bool:
        """Whether readiness has been reported."""
        return self._ready

    @property
    def shutdown_deadline(self) -> float | None:
        """The ``time.monotonic()`` end of the shutdown budget, once step 2 is over."""
        return self._deadline

    @property
    def last_reload(self) -> ReloadResult | None:
        """The result of the last finished reload run."""
        return self.reloads.last

    def add_state_listener(self, listener: Callable[[State, State], None]) -> None:
        """Call ``listener(old, new)`` after every state change."""
        self._state_listeners.append(listener)

    def request_shutdown(self, exit_code: int = 0) -> None:
        """Begin a graceful shutdown ending with ``exit_code`` (unless a failure set one)."""
        self.outcome.exit_with(exit_code)
        self.dispatch(Event.SHUTDOWN)

    def request_reload(self) -> asyncio.Future[ReloadResult]:
        """Request a reload, as SIGHUP would.

        Returns:
            The result of the first run that starts after this request; it
            fails with :class:`ReloadAbandoned` if the daemon stops first.
        """
        future = self.reloads.request()
        self.dispatch(Event.RELOAD)
        return future

    def _request_reload_from_program(self) -> None:
        self.dispatch(Event.RELOAD)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a service task: kept until the services close; failing stops the daemon."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._service_tasks.add(task)
        task.add_done_callback(self._framework_task_done)
        return task

    def add_forced_exit_step(self, step: Callable[[], None]) -> None:
        """Run ``step()`` at a forced exit, inside a signal handler (see :mod:`._forced`)."""
        self.forced.steps.append(step)

    # --- the whole life -------------------------------------------------------------

    async def live(self) -> None:
        """Start, run until a stop is requested, then run the shutdown sequence."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._stopping = asyncio.Event()
        listeners: Mapping[str, socket.socket] = self.parts.listeners or {}
        self._context = Context(
            options=self.options,
            # The health socket is the framework's, not the program's.
            sockets={name: listeners[name] for name in self.options.listen},
            state=lambda: self.lifecycle.state,
            ready=self.report_ready,
            status=self.set_status,
            shutdown=self.request_shutdown,
            reload=self._request_reload_from_program,
            stopping=self._stopping,
            serving=self.serving,
        )
        loop.set_exception_handler(self._on_loop_exception)
        for signum in HANDLED_SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        _log.info(
            "starting",
            loop=type(loop).__module__.split(".")[0],
            detached=not self.parts.foreground,
            sockets={name: sockname(s) for name, s in (self.parts.listeners or {}).items()},
            options=self.options.summary(),
        )
        if self.parts.foreground:
            # Detached, the launcher enforces start_timeout (it outlives a hung loop).
            loop.call_later(self.options.start_timeout, self._start_timed_out)
        notifier = self.parts.notifier
        if notifier is not None and notifier.watchdog_interval:
            from ._systemd import run_watchdog

            self._spawn(run_watchdog(notifier, notifier.watchdog_interval), "aiodaemon-watchdog")
        if await self._start_services():
            self._startup_task = loop.create_task(self._startup(), name="aiodaemon-startup")
        await self._stop_requested.wait()
        await self._shutdown()

    def _builtin_services(self) -> list[Callable[[Runtime], Service | None]]:
        def control(runtime: Runtime) -> Service | None:
            if runtime.parts.control is None:
                return None
            from . import __version__
            from ._control_server import ControlServer, DaemonCommands

            commands = DaemonCommands(
                state=lambda: runtime.lifecycle.state.value,
                sockets=runtime.context.sockets,
                reloads=runtime.reloads,
                request_reload=runtime._request_reload_from_program,
                version=__version__,
            )
            sock = runtime.parts.control.sock
            server = ControlServer(sock, {os.geteuid()}, commands.commands())
            return ControlService(server, str(runtime.parts.control.path))

        def serving(runtime: Runtime) -> Service:
            return ServingService(runtime, runtime.serving)

        def health(runtime: Runtime) -> Service | None:
            if runtime.options.health is None:
                return None
            from ._health import HealthServer

            assert runtime.parts.listeners is not None  # acquire bound the health socket
            return HealthService(
                HealthServer(
                    runtime.parts.listeners[HEALTH_SOCKET],
                    state=lambda: runtime.lifecycle.state,
                    reported_ready=lambda: runtime.ready,
                    checks=runtime.hooks.readiness,
                    context=runtime.context,
                )
            )

        return [control, serving, health]

    async def _start_services(self) -> bool:
        for factory in [*self._builtin_services(), *self.parts.factories]:
            try:
                service = factory(self)
                if service is None:
                    continue
                self.services.append(service)
                await service.start()
            except Exception as exc:
                _log.exception("service failed to start", factory=describe(factory))
                self.outcome.fail(f"startup failed: {type(exc).__name__}: {exc}", exc)
                self.dispatch(Event.STARTUP_FAILED)
                return False
        return True

    async def _startup(self) -> None:
        """Run the startup hooks and lifespan setups in order; cancelled by a stop."""
        me = asyncio.current_task()
        for entry in self.hooks.startup:
            if me is not None and me.cancelling():
                # A hook swallowed the stop's cancellation: start nothing more.
                return
            try:
                if isinstance(entry, Lifespan):
                    self._entered[entry] = await entry.enter(self.context)
                else:
                    await call_async(entry, self.context)
            except Exception as exc:
                _log.exception("startup hook failed", hook=entry_name(entry))
                self.outcome.fail(f"startup failed: {type(exc).__name__}: {exc}", exc)
                self.dispatch(Event.STARTUP_FAILED)
                return
        self.dispatch(Event.STARTED)

    async def _run_main(self) -> None:
        try:
            if asyncio.iscoroutine(self.main):
                await self.main
            else:
                await call_async(self.main, self.context)
        except Exception as exc:
            _log.exception("main failed")
            self.outcome.fail(f"main failed: {type(exc).__name__}: {exc}", exc)
            self.dispatch(Event.SHUTDOWN)
        else:
            _log.info("main returned")
            if not self._ready:
                self.outcome.fail("main returned before reporting ready")
            self.dispatch(Event.SHUTDOWN)

    # --- events ---------------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        _log.info("signal received", signal=signal.Signals(signum).name)
        self.dispatch(event_for_signal(signum), signum=signum)

    def dispatch(self, event: Event, *, signum: int | None = None) -> Action:
        """Feed ``event`` to the state machine, carry out its answer and return it."""
        old = self.lifecycle.state
        action = self.lifecycle.handle(event)
        if action is Action.BEGIN_SHUTDOWN:
            self._begin_shutdown(signum)
        elif action is Action.FORCE_EXIT:
            # Two stop signals read by the loop at once: the plain handler was
            # armed too late for the second.
            code = 128 + signum if signum else ExitCode.FAILURE
            self.forced.exit(code, "second stop request during shutdown")
        elif action in (Action.BEGIN_RUNNING, Action.BEGIN_RUNNING_THEN_RELOAD):
            if self.options.ready == "startup":
                self.report_ready()
            self._spawn(self._run_main(), "aiodaemon-main")
            if action is Action.BEGIN_RUNNING_THEN_RELOAD:
                self._begin_reload()
        elif action is Action.BEGIN_RELOAD:
            self._begin_reload()
        elif action is Action.QUEUE_RELOAD:
            _log.info("reload queued")
        elif action is Action.REFUSE_RELOAD:
            self.reloads.abandon(_NO_RELOAD_WHILE_STOPPING)
        elif action is Action.REOPEN_LOGS:
            self.parts.logs.reopen()
        new = self.lifecycle.state
        if new is not old:
            for listener in self._state_listeners:
                try:
                    listener(old, new)
                except Exception:
                    _log.exception("state listener failed", listener=describe(listener))
        return action

    def _begin_shutdown(self, signum: int | None) -> None:
        assert self._stop_requested is not None
        assert self._stopping is not None
        if signum is not None and not self._ready:
            self.outcome.fail(f"stopped by {signal.Signals(signum).name} before it was ready")
        self.reloads.abandon(_NO_RELOAD_WHILE_STOPPING)
        self.forced.arm(asyncio.get_running_loop().remove_signal_handler)
        self._stopping.set()
        self._stop_requested.set()

    # --- readiness, status, reload --------------------------------------------------

    def report_ready(self) -> None:
        """Release the launcher and tell systemd; later calls do nothing."""
        if self._ready or self.lifecycle.state in (State.STOPPING, State.STOPPED):
            return
        self._ready = True
        self.parts.pipe.ready()
        if self.parts.notifier is not None:
            self.parts.notifier.ready()
        _log.info("ready", pid=os.getpid())

    def _start_timed_out(self) -> None:
        if self._ready or self.lifecycle.state in (State.STOPPING, State.STOPPED):
            return
        message = f"not ready after {self.options.start_timeout:g} s"
        _log.error(message, start_timeout=self.options.start_timeout)
        self.outcome.fail(message)
        self.dispatch(Event.SHUTDOWN)

    def set_status(self, text: str) -> None:
        """Publish a one-line status to systemd and the log."""
        if self.parts.notifier is not None:
            self.parts.notifier.status(text)
        _log.info("status", status=text)

    def _begin_reload(self) -> None:
        self._spawn(self._reload(), "aiodaemon-reload")

    async def _reload(self) -> None:
        # systemd hears of reloads only once it heard READY=1: a RELOADING=1
        # (and the READY=1 closing it) before would claim a readiness the
        # program has not reported yet (ready="manual").
        notifier = self.parts.notifier if self._ready else None
        if notifier is not None:
            notifier.reloading()
        self.parts.logs.reopen()
        covers = self.reloads.begin()
        _log.info("reload started")
        error = None
        for hook in self.hooks.reload:
            try:
                await call_async(hook, self.context)
            except Exception as exc:
                # The program keeps its previous state: later hooks would
                # build on a step that did not happen.
                _log.exception("reload hook failed", hook=describe(hook))
                error = f"{type(exc).__name__}: {exc}"
                break
        self.reloads.finish(covers, error)
        if error is None:
            _log.info("reload finished", ok=True)
        else:
            _log.error("reload finished", ok=False, error=error)
        if notifier is not None and self.lifecycle.state is State.RELOADING:
            notifier.ready()
        self.dispatch(Event.RELOADED)

    # --- shutdown -------------------------------------------------------------------

    async def _shutdown(self) -> None:
        timeout = self.options.shutdown_timeout
        if self.parts.notifier is not None:
            self.parts.notifier.stopping()
        for service in self.services:
            self._guard(service, "not_ready", service.not_ready)
        drain = self.drain_delay if self._ready else 0.0
        _log.info("shutdown started", timeout=timeout, drain_delay=drain)
        # The in-loop deadline below cannot fire while sync code blocks the loop.
        backstop = threading.Timer(drain + timeout + 1.0, self._backstop)
        backstop.daemon = True
        backstop.start()
        if drain > 0:
            await asyncio.sleep(drain)
        self._deadline = time.monotonic() + timeout
        sequence = asyncio.create_task(self._shutdown_steps(), name=_STOP_TASK)
        done, _ = await asyncio.wait([sequence], timeout=timeout)
        if not done:
            self._report_stuck()
            self._exit_now(ExitCode.SHUTDOWN_TIMEOUT, f"shutdown took longer than {timeout}s")
        backstop.cancel()
        self.dispatch(Event.STOPPED)
        _log.info("shutdown finished")

    async def _shutdown_steps(self) -> None:
        startup = self._startup_task
        if startup is not None and not startup.done():
            # A stop during startup: the hooks still running are cancelled
            # within the one shutdown budget, then the shutdown hooks run.
            startup.cancel()
            await asyncio.wait([startup])
        for service in self.services:
            await self._guard_async(service, "stop_accepting", service.stop_accepting)
        for service in self.services:
            await self._guard_async(service, "wait_finished", service.wait_finished)
        if startup is not None:
            await self._run_shutdown_hooks()
        await self._cancel_rest()
        for service in self.services:
            await self._guard_async(service, "close", service.close)
        await _cancel_all(self._service_tasks)
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()

    async def _run_shutdown_hooks(self) -> None:
        for entry in reversed(self.hooks.shutdown):
            try:
                if isinstance(entry, Lifespan):
                    gen = self._entered.pop(entry, None)
                    if gen is not None:
                        await entry.exit(gen)
                else:
                    await call_async(entry, self.context)
            except HookError as exc:
                _log.error("lifespan failed", hook=entry_name(entry), error=str(exc))
                self.outcome.fail(str(exc), exc)
            except Exception:
                _log.exception("shutdown hook failed", hook=entry_name(entry))

    async def _cancel_rest(self) -> None:
        me = asyncio.current_task()
        keep = {me, *self._service_tasks}
        pending = [
            t
            for t in asyncio.all_tasks()
            if t not in keep and t.get_name() not in (_LIFECYCLE_TASK, _STOP_TASK)
        ]
        await _cancel_all(pending)
        for task in pending:
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                _log.error("task failed during shutdown", task=task.get_name(), exc_info=exc)

    def _report_stuck(self) -> None:
        # The shutdown sequence's own stack names the hook that hangs.
        for task in asyncio.all_tasks():
            if task is asyncio.current_task():
                continue
            _log.error("task stuck at shutdown", task=task.get_name(), stack=await_chain(task))

    def _backstop(self) -> None:
        self._exit_now(
            ExitCode.SHUTDOWN_TIMEOUT,
            f"shutdown took longer than {self.options.shutdown_timeout}s (event loop blocked)",
        )

    def _exit_now(self, code: int, reason: str) -> NoReturn:
        """Leave after a timeout: log why, drain the log briefly, do the minimum, exit.

        Never called from a signal handler: a stop signal arriving meanwhile
        runs :class:`ForcedExit`, which shares no lock with this.
        """
        if not self._exit_claim.acquire(blocking=False):
            # The other thread is already on its way out.
            threading.Event().wait()
        _log.critical("forced exit", reason=reason, status=code)
        self.outcome.force(code, reason)
        self._release_launcher()
        _log.info("exit", status=int(self.outcome.code))
        self.parts.logs.close(min(1.0, self.options.shutdown_timeout))
        if self.parts.listeners is not None:
            # Not a signal handler: the unix socket files can go too.
            self.parts.listeners.close()
        if self.parts.control is not None:
            self.parts.control.close()
        self.forced.exit(self.outcome.code, reason)

    # --- the end --------------------------------------------------------------------

    def _release_launcher(self) -> int:
        """Send the verdict to a launcher still waiting (and systemd); return the final status."""
        code = self.outcome.code
        if not self._ready:
            code = code or ExitCode.FAILURE
            message = self.outcome.message or "daemon exited before it was ready"
            if self.parts.notifier is not None:
                self.parts.notifier.failed(message, self.outcome.errno)
            self.parts.pipe.fail(code, message)
        return int(code)

    def finish(self) -> int:
        """Give the launcher its verdict, say how it ended; return the final status."""
        code = self._release_launcher()
        if inspect.iscoroutine(self.main) and inspect.getcoroutinestate(self.main) == (
            inspect.CORO_CREATED
        ):
            # A coroutine object that never ran is closed, not left to warn.
            self.main.close()
        _log.info("exit", status=code)
        failure = self.outcome.message
        if self.parts.foreground and failure and (self.options.log_file or self.options.syslog):
            # The log went elsewhere; the person at the terminal still sees why.
            if self.outcome.exception is not None:
                traceback.print_exception(self.outcome.exception, file=sys.stderr)
            print(f"aiodaemon: {failure}", file=sys.stderr, flush=True)
        # Draining the log queue (when the caller's stack closes) is the last
        # step of the shutdown budget.
        left = self.options.shutdown_timeout
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
        self.parts.log_targets.drain_timeout = max(0.5, left)
        return code

    # --- plumbing -------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._framework_tasks.add(task)
        task.add_done_callback(self._framework_task_done)

    def _framework_task_done(self, task: asyncio.Task[Any]) -> None:
        self._framework_tasks.discard(task)
        self._service_tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            _log.error("internal task failed", task=task.get_name(), exc_info=exc)
            self.outcome.fail(f"{task.get_name()} failed: {type(exc).__name__}: {exc}", exc)
            self.dispatch(Event.SHUTDOWN)

    def _guard(self, service: Service, step: str, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            _log.exception("service step failed", service=service.name, step=step)

    async def _guard_async(
        self, service: Service, step: str, call: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        try:
            await call()
        except Exception:
            _log.exception("service step failed", service=service.name, step=step)

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        _log.error(
            "unhandled exception in event loop",
            detail=context.get("message"),
            exc_info=exc if isinstance(exc, BaseException) else None,
        )


def entry_name(entry: object) -> str:
    """The name of a hook or lifespan for the log."""
    return entry.name if isinstance(entry, Lifespan) else describe(entry)


async def _cancel_all(tasks: Any) -> None:
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
