"""Run phase: the event loop, signals as lifecycle events, hooks, shutdown and reload.

Signal handlers only feed the state machine (:mod:`._state`); this module
carries out the action it answers with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from ._config import HEALTH_SOCKET
from ._context import Context
from ._control_server import ControlServer, DaemonCommands
from ._hooks import HookFunction, MainTarget, call_async, describe
from ._loop import await_chain, new_event_loop, sockname
from ._reloads import ReloadTracker
from ._serving import Serving
from ._state import HANDLED_SIGNALS, Action, Event, Lifecycle, State, event_for_signal
from .exceptions import ExitCode, StartupError

if TYPE_CHECKING:
    from ._config import Options
    from ._control_socket import ControlSocket
    from ._health import HealthServer
    from ._logging import LogWriter
    from ._pidfile import Pidfile
    from ._readiness import ReadinessPipe
    from ._sockets import Listeners
    from ._systemd import Notifier

__all__ = ["DaemonParts", "Hooks", "run_daemon"]

_log = structlog.get_logger("aiodaemon")


@dataclass(slots=True)
class Hooks:
    """The hooks registered on one daemon, in registration order."""

    startup: list[HookFunction] = field(default_factory=list)
    reload: list[HookFunction] = field(default_factory=list)
    shutdown: list[HookFunction] = field(default_factory=list)
    readiness: list[HookFunction] = field(default_factory=list)


@dataclass(slots=True)
class DaemonParts:
    """Everything acquired before the loop exists, handed to the run phase."""

    options: Options
    listeners: Listeners | None
    pidfile: Pidfile | None
    pipe: ReadinessPipe
    notifier: Notifier | None
    logs: LogWriter
    foreground: bool
    control: ControlSocket | None = None


def run_daemon(main: MainTarget, hooks: Hooks, parts: DaemonParts) -> int:
    """Run the program to its end and return the exit status.

    Cleans up whatever happens: the pidfile is removed, the launcher released
    and the log queue drained before this returns.
    """
    runtime = _Runtime(main, hooks, parts)
    code: int = ExitCode.FAILURE
    try:
        loop = new_event_loop(parts.options.uvloop)
    except StartupError as exc:
        runtime.fail_startup(exc)
    else:
        try:
            asyncio.set_event_loop(loop)
            task = loop.create_task(runtime.live(), name="aiodaemon-lifecycle")
            code = loop.run_until_complete(task)
        except Exception as exc:
            # A bug of ours must still end in a logged traceback, a released
            # launcher and a removed pidfile, never in a silent death.
            _log.exception("internal error")
            runtime.fail_startup(exc)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return runtime.finish(code)


class _Runtime:
    def __init__(self, main: MainTarget, hooks: Hooks, parts: DaemonParts) -> None:
        self.main = main
        self.hooks = hooks
        self.parts = parts
        self.options = parts.options
        self.lifecycle = Lifecycle()
        self.exit_code: int = ExitCode.OK
        self.failure: str | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        # The loop keeps only weak references to tasks: ours must not vanish mid-run.
        self._framework_tasks: set[asyncio.Task[Any]] = set()
        self._exit_lock = threading.Lock()
        self._ready_done = False
        self._deadline: float | None = None
        self.failure_exc: BaseException | None = None
        self.context: Context | None = None
        self.serving = Serving()
        self.health: HealthServer | None = None
        self.reloads = ReloadTracker()
        self._control: ControlServer | None = None

    # --- the whole life -------------------------------------------------------------

    async def live(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._stopping = asyncio.Event()
        listeners: Mapping[str, socket.socket] = self.parts.listeners or {}
        self.context = Context(
            options=self.options,
            # The health socket is the framework's, not the program's.
            sockets={name: listeners[name] for name in self.options.listen},
            state=lambda: self.lifecycle.state,
            ready=self.report_ready,
            status=self.set_status,
            shutdown=lambda code: self.dispatch(Event.SHUTDOWN, exit_code=code),
            reload=lambda: self.dispatch(Event.RELOAD),
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
        await self._start_control()
        if self.parts.foreground:
            # Detached, the launcher enforces start_timeout (it outlives a hung loop).
            loop.call_later(self.options.start_timeout, self._start_timed_out)
        notifier = self.parts.notifier
        if notifier is not None and notifier.watchdog_interval:
            from ._systemd import run_watchdog

            self._spawn(run_watchdog(notifier, notifier.watchdog_interval), "aiodaemon-watchdog")

        if self.options.health is not None:
            # Answering from the start of the startup hooks: /livez 200, /readyz 503.
            from ._health import HealthServer  # imported only by daemons that serve it

            self.health = HealthServer(
                listeners[HEALTH_SOCKET],
                state=lambda: self.lifecycle.state,
                reported_ready=lambda: self._ready_done,
                checks=self.hooks.readiness,
                context=self.context,
            )
            await self.health.start()
        started = await self._startup()
        if started:
            action = self.lifecycle.handle(Event.STARTED)
            if self.options.ready == "startup":
                self.report_ready()
            self._spawn(self._run_main(), "aiodaemon-main")
            if action is Action.BEGIN_RUNNING_THEN_RELOAD:
                self._spawn(self._reload(), "aiodaemon-reload")
            await self._stop_requested.wait()
        return await self._shutdown(run_hooks=started)

    async def _startup(self) -> bool:
        """Run the startup hooks unless a stop request or a failure cuts them short."""
        assert self._stop_requested is not None
        task = asyncio.create_task(self._run_startup_hooks(), name="aiodaemon-startup")
        stop = asyncio.create_task(self._stop_requested.wait())
        await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=self.options.shutdown_timeout)
            self.failure = self.failure or "stopped before it was ready"
            return False
        if task.cancelled():
            self.failure = "startup was cancelled"
            self._set_exit(ExitCode.FAILURE)
            return False
        exc = task.exception()
        if exc is not None:
            self.failure = f"startup failed: {type(exc).__name__}: {exc}"
            self.failure_exc = exc
            self._set_exit(ExitCode.FAILURE)
            self.lifecycle.handle(Event.SHUTDOWN)
            return False
        return True

    async def _run_startup_hooks(self) -> None:
        assert self.context is not None
        for hook in self.hooks.startup:
            try:
                await call_async(hook, self.context)
            except Exception:
                _log.exception("startup hook failed", hook=describe(hook))
                raise

    async def _run_main(self) -> None:
        assert self.context is not None
        try:
            if asyncio.iscoroutine(self.main):
                await self.main
            else:
                await call_async(self.main, self.context)
        except Exception as exc:
            _log.exception("main failed")
            self.failure = f"main failed: {type(exc).__name__}: {exc}"
            self.failure_exc = exc
            self.dispatch(Event.SHUTDOWN, exit_code=ExitCode.FAILURE)
        else:
            _log.info("main returned")
            if self.parts.pipe.pending:
                self.failure = "main returned before reporting ready"
                self._set_exit(ExitCode.FAILURE)
            self.dispatch(Event.SHUTDOWN)

    # --- events ---------------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        _log.info("signal received", signal=signal.Signals(signum).name)
        self.dispatch(event_for_signal(signum), signum=signum)

    def dispatch(self, event: Event, *, signum: int | None = None, exit_code: int = 0) -> None:
        """Feed ``event`` to the state machine and carry out its answer."""
        self._set_exit(exit_code)
        action = self.lifecycle.handle(event)
        if action is Action.BEGIN_SHUTDOWN:
            if signum is not None and self.parts.pipe.pending and self.failure is None:
                self.failure = f"stopped by {signal.Signals(signum).name} before it was ready"
            self._arm_forced_exit()
            self.reloads.abandon("the daemon is stopping; the reload did not run")
            assert self._stop_requested is not None
            self._stop_requested.set()
        elif action is Action.FORCE_EXIT:
            self.force_exit(128 + signum if signum else ExitCode.FAILURE, "second stop request")
        elif action is Action.BEGIN_RELOAD:
            self._spawn(self._reload(), "aiodaemon-reload")
        elif action is Action.QUEUE_RELOAD:
            _log.info("reload queued")
        elif action is Action.REOPEN_LOGS:
            self.parts.logs.reopen()

    def _arm_forced_exit(self) -> None:
        """From now on a second SIGTERM/SIGINT exits at once, even if the loop is stuck.

        A plain handler runs between bytecodes of whatever holds the main thread,
        where a loop callback would wait for the stuck loop to come back.
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signum)
            signal.signal(signum, self._on_forced_signal)

    def _on_forced_signal(self, signum: int, frame: object) -> None:
        self.force_exit(128 + signum, f"second {signal.Signals(signum).name} during shutdown")

    # --- readiness, status, reload --------------------------------------------------

    def report_ready(self) -> None:
        """Release the launcher and tell systemd; later calls do nothing."""
        if self.lifecycle.state in (State.STOPPING, State.STOPPED):
            return
        if self._ready_done:
            return
        self._ready_done = True
        self.parts.pipe.ready()
        if self.parts.notifier is not None:
            self.parts.notifier.ready()
        _log.info("ready", pid=os.getpid())

    async def _start_control(self) -> None:
        """Answer on the control socket from now on (state "starting" first)."""
        if self.parts.control is None:
            return
        from . import __version__

        commands = DaemonCommands(
            state=lambda: self.lifecycle.state.value,
            sockets=self.context.sockets if self.context is not None else {},
            reloads=self.reloads,
            request_reload=lambda: self.dispatch(Event.RELOAD),
            version=__version__,
        )
        server = ControlServer(self.parts.control.sock, {os.geteuid()}, commands.commands())
        try:
            await server.start()
        except OSError:
            # Signals still stop and reload the daemon; the CLI falls back to them.
            _log.exception("control socket not served", path=str(self.parts.control.path))
            return
        self._control = server

    def _start_timed_out(self) -> None:
        if self._ready_done or self.lifecycle.state in (State.STOPPING, State.STOPPED):
            return
        message = f"not ready after {self.options.start_timeout:g} s"
        _log.error(message, start_timeout=self.options.start_timeout)
        self.failure = self.failure or message
        self.dispatch(Event.SHUTDOWN, exit_code=ExitCode.FAILURE)

    def set_status(self, text: str) -> None:
        if self.parts.notifier is not None:
            self.parts.notifier.status(text)
        _log.info("status", status=text)

    async def _reload(self) -> None:
        assert self.context is not None
        while True:
            if self.parts.notifier is not None:
                self.parts.notifier.reloading()
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
            if self.lifecycle.state is not State.RELOADING:
                return
            if self.parts.notifier is not None:
                self.parts.notifier.ready()
            if self.lifecycle.handle(Event.RELOADED) is not Action.BEGIN_RELOAD:
                return

    # --- shutdown -------------------------------------------------------------------

    async def _shutdown(self, *, run_hooks: bool) -> int:
        assert self._stopping is not None
        timeout = self.options.shutdown_timeout
        # Only a daemon that said it was ready can have clients to drain.
        drain_delay = self.options.drain_delay if self._ready_done else 0.0
        self._stopping.set()
        if self.parts.notifier is not None:
            self.parts.notifier.stopping()
        _log.info("shutdown started", timeout=timeout, drain_delay=drain_delay)
        # The in-loop deadline below cannot fire while sync code blocks the loop.
        backstop = threading.Timer(drain_delay + timeout + 1.0, self._backstop)
        backstop.daemon = True
        backstop.start()
        if drain_delay:
            # /readyz already says 503: load balancers and Kubernetes endpoints
            # stop sending new connections while we still accept them.
            await asyncio.sleep(drain_delay)
        self._deadline = time.monotonic() + timeout
        sequence = asyncio.create_task(self._shutdown_sequence(run_hooks), name="aiodaemon-stop")
        done, _ = await asyncio.wait([sequence], timeout=timeout)
        if not done:
            self._report_stuck()
            self.force_exit(ExitCode.SHUTDOWN_TIMEOUT, f"shutdown took longer than {timeout}s")
        backstop.cancel()
        if self.health is not None:
            self.health.close()
        if self._control is not None:
            await self._control.close()
        self.lifecycle.handle(Event.STOPPED)
        _log.info("shutdown finished")
        return self.exit_code

    async def _shutdown_sequence(self, run_hooks: bool) -> None:
        assert self.context is not None
        assert self._deadline is not None
        # Connections get half the budget; the shutdown hooks keep the rest.
        connections_deadline = self._deadline - self.options.shutdown_timeout / 2
        await self.serving.wait_closed(connections_deadline)
        if run_hooks:
            for hook in reversed(self.hooks.shutdown):
                try:
                    await call_async(hook, self.context)
                except Exception:
                    _log.exception("shutdown hook failed", hook=describe(hook))
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me and not _is_lifecycle(t)]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for task in pending:
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                _log.error("task failed during shutdown", task=task.get_name(), exc_info=exc)
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()

    def _report_stuck(self) -> None:
        # The shutdown sequence's own stack names the hook that hangs.
        for task in asyncio.all_tasks():
            if task is asyncio.current_task():
                continue
            _log.error("task stuck at shutdown", task=task.get_name(), stack=await_chain(task))

    def _backstop(self) -> None:
        self.force_exit(
            ExitCode.SHUTDOWN_TIMEOUT,
            f"shutdown took longer than {self.options.drain_delay + self.options.shutdown_timeout}s"
            " (event loop blocked)",
        )

    def force_exit(self, code: int, reason: str) -> NoReturn:
        """Leave now: clean what must be cleaned (pidfile, launcher, logs), skip the rest."""
        # The backstop thread and a signal may race here; one of them exits.
        self._exit_lock.acquire()
        _log.critical("forced exit", reason=reason, status=code)
        if self.failure is None and self.parts.pipe.pending:
            self.failure = reason
        self.exit_code = code
        self.finish(code, drain_timeout=min(1.0, self.options.shutdown_timeout))
        os._exit(code)

    # --- the end --------------------------------------------------------------------

    def fail_startup(self, exc: BaseException) -> None:
        """Record a failure that happened before the loop could start."""
        _log.error("startup failed", error=f"{type(exc).__name__}: {exc}")
        self.failure = str(exc)
        self._set_exit(getattr(exc, "exit_code", ExitCode.FAILURE))

    def finish(self, code: int, drain_timeout: float | None = None) -> int:
        """Release the launcher, remove the pidfile, drain logs; return the final status."""
        if self.exit_code and not code:
            code = self.exit_code
        if not self._ready_done:
            code = code or ExitCode.FAILURE
            message = self.failure or "daemon exited before it was ready"
            if self.parts.notifier is not None:
                errno = getattr(self.failure_exc, "errno", None)
                self.parts.notifier.failed(message, errno if isinstance(errno, int) else None)
            self.parts.pipe.fail(code, message)
        if self.parts.listeners is not None:
            # Closed here, after every server: unix socket files go with the daemon.
            self.parts.listeners.close()
        if self.parts.control is not None:
            self.parts.control.close()
        if self.parts.pidfile is not None:
            self.parts.pidfile.remove()
        _log.info("exit", status=int(code))
        if (
            self.parts.foreground
            and self.failure
            and (self.options.log_file or self.options.syslog)
        ):
            # The log went elsewhere; the person at the terminal still sees why.
            if self.failure_exc is not None:
                traceback.print_exception(self.failure_exc, file=sys.stderr)
            print(f"aiodaemon: {self.failure}", file=sys.stderr, flush=True)
        if self.parts.notifier is not None:
            self.parts.notifier.close()
        if drain_timeout is None:
            # Draining the log queue is the last step of the shutdown budget.
            left = self.options.shutdown_timeout
            if self._deadline is not None:
                left = self._deadline - time.monotonic()
            drain_timeout = max(0.5, left)
        self.parts.logs.close(drain_timeout)
        return int(code)

    # --- plumbing -------------------------------------------------------------------

    def _set_exit(self, code: int) -> None:
        if code and not self.exit_code:
            self.exit_code = code

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._framework_tasks.add(task)
        task.add_done_callback(self._framework_task_done)

    def _framework_task_done(self, task: asyncio.Task[Any]) -> None:
        self._framework_tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            _log.error("internal task failed", task=task.get_name(), exc_info=exc)
            self.dispatch(Event.SHUTDOWN, exit_code=ExitCode.FAILURE)

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        _log.error(
            "unhandled exception in event loop",
            detail=context.get("message"),
            exc_info=exc if isinstance(exc, BaseException) else None,
        )


def _is_lifecycle(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is the framework's own lifecycle or shutdown sequence."""
    return task.get_name() in ("aiodaemon-lifecycle", "aiodaemon-stop")
