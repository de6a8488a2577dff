"""Run phase: the daemon's life on its loop: signals as lifecycle events, hooks, reload, shutdown.

Every event (signal, request, hook result) goes through :meth:`Runtime.dispatch`,
which asks the state machine (:mod:`._state`) and carries out its answer;
nothing else changes the state. Loop signal handlers only feed events; once
shutdown begins, a plain handler (:mod:`._forced`) makes a second stop signal
exit at once.

The run, in order: signal handlers; services (:mod:`._services`) built and
started; startup hooks and lifespan setups in registration order; ready;
``main``; then the shutdown sequence (:mod:`._shutdown`, its steps named there).
A reload (SIGHUP, ``aiodaemon reload``) is one run of :mod:`._reload`. The
loop itself, and how the run's end is reported, are :mod:`._runner`'s.

Extension points, for services (:class:`._services.RuntimeHandle`):
:attr:`Runtime.drain_delay`, :meth:`Runtime.add_state_listener`,
:meth:`Runtime.request_shutdown`, :meth:`Runtime.request_reload` (a future of
the :class:`._reloads.ReloadResult` of the first run that started after
the request, or :class:`._reloads.ReloadAbandoned` when the daemon stops first),
:meth:`Runtime.spawn`, :meth:`Runtime.add_forced_exit_step`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import signal
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from .._logs._logging import program_config_summary
from ..exceptions import ExitCode
from ._context import Context
from ._exit_notice import expect_stop_claim, note_ready
from ._forced import ForcedExit, log_joined, log_repeated
from ._forked_child import watch_forks
from ._hooks import Hooks, Lifespan, MainTarget, describe
from ._kept_signals import keep_signal_handler, signal_keeper
from ._loop import loop_name, sockname
from ._outcome import Outcome, error_text
from ._own_tasks import own_task
from ._reload import log_reload_abandoned, run_reload
from ._reloads import ReloadResult, ReloadTracker
from ._serving import Serving
from ._shutdown import Shutdown
from ._signal_mask import loop_takes_over, release_signals, unhandled
from ._startup import (
    StartDeadline,
    request_shutdown_by_program,
    run_main,
    run_startup,
    start_services,
)
from ._state import HANDLED_SIGNALS, Action, Event, Lifecycle, State, event_for_signal
from ._user_exit import note_exit_request, on_loop_exception

if TYPE_CHECKING:
    import socket
    import threading

    from ._runner import DaemonParts
    from ._services import Service

__all__ = ["Hooks", "Runtime"]

_log = structlog.get_logger("aiodaemon")

_NO_RELOAD_WHILE_STOPPING = "the daemon is stopping; the reload did not run"
#: The failure of a program that called ``loop.stop()`` on the daemon's loop.
LOOP_STOPPED = (
    "the program stopped the event loop (loop.stop()); ctx.request_shutdown() ends the daemon"
)


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
        self.forced.logs = parts.logs
        self.services: list[Service] = []
        #: the backstop threads this run started (see _finish: none outlives it).
        self.backstops: list[threading.Thread] = []
        #: seconds to keep accepting after a stop request (shutdown step 2).
        self.drain_delay = self.options.drain_delay
        #: ``ctx.start_server``/``ctx.track``: drained by a built-in service.
        self.serving = Serving()
        self._state_listeners: list[Callable[[State, State], None]] = []
        self._ready = False
        note_ready(False)  # what a run before this one in the process reported is not ours
        #: ctx.notify_ready() came while startup hooks still ran (see report_ready).
        self._ready_asked = False
        self._context: Context | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        #: the startup hooks' task, None until startup began.
        self.startup_task: asyncio.Task[None] | None = None
        #: the hook running now: its kind, its name and the monotonic time it
        #: began (``("reload", "app.load", t)``): ``status`` names a hook that hangs.
        self.hook_running: tuple[str, str, float] | None = None
        #: lifespans whose setup completed, with their suspended generators.
        self.entered: dict[Lifespan, AsyncGenerator[Any, None]] = {}
        #: the contextvars Context of each lifespan's setup, for its teardown.
        self.lifespan_contexts: dict[Lifespan, contextvars.Context] = {}
        #: the reload run under way (cancelled first at shutdown: see _shutdown).
        self.reload_task: asyncio.Task[None] | None = None
        #: the task running ``main``, once RUNNING (cancelled before the rest: see _shutdown).
        self.main_task: asyncio.Task[None] | None = None
        # The loop keeps only weak references to tasks: ours must not vanish mid-run.
        self._framework_tasks: set[asyncio.Task[Any]] = set()
        self.service_tasks: set[asyncio.Task[Any]] = set()
        self.shutdown = Shutdown(self)
        #: what began the shutdown when it is no failure (``main returned``, a
        #: stop signal): an upgrade's new process that stops before its
        #: take-over names it to the old daemon, as it names a failure.
        self.stop_cause: str | None = None

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
    def reported_state(self) -> State:
        """The state ``status``, ``/readyz`` and ``upgrade`` go by: STARTING until ready.

        With ``ready="manual"``, ``main`` runs (RUNNING) before it calls
        ``ctx.notify_ready()``; until then its launcher still waits, so to the
        outside the daemon is still starting (and an upgrade, whose hand-over
        would end the old daemon before it ever was ready, waits too).
        """
        state = self.lifecycle.state
        return State.STARTING if state is State.RUNNING and not self._ready else state

    @property
    def shutdown_deadline(self) -> float | None:
        """The ``time.monotonic()`` end of the shutdown budget, once step 2 is over."""
        return self.shutdown.deadline

    @property
    def last_reload(self) -> ReloadResult | None:
        """The result of the last finished reload run."""
        return self.reloads.last

    def add_state_listener(self, listener: Callable[[State, State], None]) -> None:
        """Call ``listener(old, new)`` after every state change."""
        self._state_listeners.append(listener)

    def stopping_because(self, cause: str) -> None:
        """Note ``cause`` as what begins the shutdown, unless it has begun (see ``stop_cause``)."""
        if self.stop_cause is None and self.lifecycle.state not in (State.STOPPING, State.STOPPED):
            self.stop_cause = cause

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

    def note_exit_request(self, exc: BaseException, by: str) -> None:
        """``by`` raised SystemExit or KeyboardInterrupt: see ``_user_exit.note_exit_request``."""
        note_exit_request(self.outcome, self._ready, exc, by)

    def exit_requested(self, exc: BaseException, by: str) -> None:
        """``by`` raised SystemExit or KeyboardInterrupt: a graceful shutdown with its status."""
        self.note_exit_request(exc, by)
        self.dispatch(Event.SHUTDOWN)

    def loop_stopped(self) -> None:
        """The program stopped the event loop (``loop.stop()``): a failure, and the shutdown."""
        _log.error("event loop stopped by the program", use="ctx.request_shutdown()")
        self.outcome.fail(LOOP_STOPPED)
        self.dispatch(Event.SHUTDOWN)

    @property
    def startup_hook_running(self) -> str | None:
        """The startup hook (or lifespan setup) running now: a timed-out start names it."""
        running = self.hook_running
        return running[1] if running is not None and running[0] == "startup" else None

    def ask_reload(self) -> None:
        """Request a reload without waiting for its result (SIGHUP's way)."""
        self.dispatch(Event.RELOAD)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a service task: kept until the services close; failing stops the daemon."""
        task = own_task(coro, name)
        self.service_tasks.add(task)
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
            ready=self._program_ready,
            status=self.set_status,
            shutdown=functools.partial(request_shutdown_by_program, self),
            reload=self.ask_reload,
            stopping=self._stopping,
            serving=self.serving,
            loop=loop,
        )
        loop.set_exception_handler(on_loop_exception)
        watch_forks(loop, self.parts.logs)
        for signum in HANDLED_SIGNALS:
            keep_signal_handler(loop, signum, self._on_signal, signum)
        keeper = signal_keeper(loop)
        if keeper is not None:
            keeper.on_restored = self.forced.take_back
        loop_takes_over()
        self.forced.arm_early()
        # Held since before the pid was written (_launch): the pending ones run now.
        release_signals(HANDLED_SIGNALS)
        if hasattr(self.parts.pipe, "handoff"):
            # An upgrade's successor writes to the log file of its spawn until it
            # reads the reopens the old daemon passes on: a rotation made while we
            # imported the program (seconds, for some) would take our first
            # records to the rotated file, lost if a second rotation compresses it.
            self.parts.logs.follow_rename()
        _log.info(
            "starting",
            loop=loop_name(loop),
            detached=not self.parts.foreground,
            sockets={
                name: sockname(s, self.options.socket_addresses().get(name))
                for name, s in (self.parts.listeners or {}).items()
            },
            options=self.options.summary(),
        )
        left_out = {} if self.parts.listeners is None else self.parts.listeners.left_out
        for name, others in left_out.items():
            # One name, one socket: clients reaching the host name by another
            # address are refused, which the operator should hear of.
            _log.warning(
                "listen address left out",
                socket=name,
                address=str(self.options.socket_addresses().get(name)),
                bound=sockname(listeners[name]),
                left_out=list(others),
            )
        taken_over = program_config_summary()
        if taken_over is not None:
            # The program configured structlog itself: say what became of it.
            _log.info(
                "structlog configuration taken over",
                kept=taken_over["kept"],
                replaced=taken_over["replaced"],
            )
        # Detached, the launcher enforces start_timeout (it outlives a hung loop).
        StartDeadline(self).start()
        notifier = self.parts.notifier
        if notifier is not None:
            # A manager that does not read its socket must not stall the loop
            # (the served ports, /livez) on a send: see _notify_socket.
            notifier.attach(loop)
        if notifier is not None and notifier.watchdog_interval:
            from ._systemd import run_watchdog

            self._spawn(run_watchdog(notifier, notifier.watchdog_interval), "aiodaemon-watchdog")
        # A stop that came while the services started: startup never begins
        # (and so no shutdown hook runs).
        started = await start_services(self)
        # SIGUSR2 is the upgrade service's, the on_signal ones their service's
        # (installed by their start); a daemon whose services failed before
        # them has nothing to upgrade, and runs no handler any more.
        service_signals = (signal.SIGUSR2, *self.hooks.signals)
        for number in service_signals:
            if unhandled(number):
                signal.signal(number, signal.SIG_IGN)
        release_signals(service_signals)
        if started and not self._stop_requested.is_set():
            self.startup_task = own_task(run_startup(self), "aiodaemon-startup")
        await self._stop_requested.wait()
        await self.shutdown.run()

    # --- events ---------------------------------------------------------------------

    def on_sighup(self) -> None:
        """SIGHUP as the daemon takes it: the terminal's hang-up, or a reload."""
        self._on_signal(signal.SIGHUP)

    def terminal_hung_up(self) -> bool:
        """Whether the terminal this foreground daemon started on has hung up."""
        if self.parts.terminal is None:
            return False
        from .._prefork._terminal import terminal_hung_up

        return terminal_hung_up(self.parts.terminal)

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP and self.terminal_hung_up():
            # The kernel's hang-up, not a reload: the terminal is gone.
            _log.info("signal received", signal="SIGHUP", terminal="hung up")
            if not self._ready:
                self.outcome.fail("stopped by the terminal's hang-up before it was ready")
            self.dispatch(Event.SHUTDOWN)
            return
        event = event_for_signal(signum)
        if event is Event.TERMINATE:
            taken = self.forced.loop_reads(signum, self.lifecycle)
            if taken is None:
                # One request delivered twice (GNU timeout signals its child,
                # then the child's process group), read together with the
                # first or one by one: never a second request.
                log_repeated(signum)
                return
            if not taken:
                # Arrived once the shutdown began: the forced-exit handler counted it.
                return
        _log.info("signal received", signal=signal.Signals(signum).name)
        self.dispatch(event, signum=signum)

    def dispatch(self, event: Event, *, signum: int | None = None) -> Action:
        """Feed ``event`` to the state machine, carry out its answer and return it."""
        old = self.lifecycle.state
        queued = self.lifecycle.reload_pending
        action = self.lifecycle.handle(event)
        if action is Action.BEGIN_SHUTDOWN:
            if queued:
                # A reload asked for during another (or the start) is dropped.
                log_reload_abandoned()
            self._begin_shutdown(signum)
        elif action is Action.JOIN_SHUTDOWN:
            log_joined(None)
        elif action is Action.FORCE_EXIT:
            # A stop signal that arrived before the plain handler was armed,
            # read by the loop after another one.
            assert signum is not None  # only stop signals (TERMINATE) force
            name = signal.Signals(signum).name
            self.forced.exit(128 + signum, f"second stop signal during shutdown: {name}", log=True)
        elif action in (Action.BEGIN_RUNNING, Action.BEGIN_RUNNING_THEN_RELOAD):
            if self.options.ready == "startup" or self._ready_asked:
                self.report_ready()
            self.main_task = self._spawn(run_main(self), "aiodaemon-main")
            if action is Action.BEGIN_RUNNING_THEN_RELOAD:
                self._begin_reload()
        elif action is Action.BEGIN_RELOAD:
            self._begin_reload()
        elif action is Action.QUEUE_RELOAD:
            # The hooks wait for their turn, the log files cannot: a rotation's
            # SIGHUP would leave records going to the rotated file meanwhile.
            self.parts.logs.reopen()
            _log.info("reload queued")
        elif action is Action.REFUSE_RELOAD:
            if self.lifecycle.state is State.STOPPING:
                # No hook runs any more; the log files still follow a rotation.
                self.parts.logs.reopen()
            log_reload_abandoned()
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
        if signum is not None:
            name = signal.Signals(signum).name
            if not self._ready:
                self.outcome.fail(f"stopped by {name} before it was ready")
            if self.stop_cause is None:
                # Not stopping_because(): the state machine is STOPPING already.
                self.stop_cause = f"stopped by {name}"
        self.reloads.abandon(_NO_RELOAD_WHILE_STOPPING)
        # A `stop` that sent SIGTERM hears how the process ended (see _exit_notice).
        expect_stop_claim()
        if self.parts.pidfile is not None:
            # Said by the control socket until it closes, by the pidfile's mark to the end.
            self.parts.pidfile.mark_stopping()
        self.forced.arm(asyncio.get_running_loop(), self.lifecycle)
        self._stopping.set()
        self._stop_requested.set()

    # --- readiness, status, reload --------------------------------------------------

    def _program_ready(self) -> None:
        """``ctx.notify_ready()``: ready now, or once the startup hooks have all returned."""
        if self.lifecycle.state is State.STARTING:
            # A later startup hook may still fail: the launcher must not have
            # said "ready" (exit 0) for a daemon whose start then fails.
            self._ready_asked = True
            return
        self.report_ready()

    def report_ready(self) -> None:
        """Release the launcher and tell systemd; later calls do nothing."""
        if self._ready or self.lifecycle.state in (State.STOPPING, State.STOPPED):
            return
        if not self.parts.pipe.ready():
            # Past the launcher's start_timeout: not ready after all. The start
            # deadline's timer, due by now, ends the start with its verdict.
            return
        self._ready = True
        # Told with the exit: a start that waited for us to be ready tells a stop from a failure.
        note_ready(True)
        if self.parts.notifier is not None:
            self.parts.notifier.ready()
        _log.info("ready", pid=os.getpid())

    def set_status(self, text: str) -> None:
        """Publish a one-line status to systemd and the log."""
        if self.parts.notifier is not None:
            self.parts.notifier.status(text)
        _log.info("status", status=text)

    def _begin_reload(self) -> None:
        self.reload_task = self._spawn(run_reload(self), "aiodaemon-reload")

    # --- the end --------------------------------------------------------------------

    def release_launcher(self) -> int:
        """Send the verdict to a launcher still waiting (and systemd); return the final status."""
        code = self.outcome.code
        if not self._ready:
            if not self.outcome.requested:
                code = code or ExitCode.FAILURE
            message = self.outcome.message or "daemon exited before it was ready"
            if self.parts.notifier is not None:
                self.parts.notifier.failed(message, self.outcome.errno)
            # The launcher's status says whether a daemon now runs: none does,
            # even when the program chose to end (sys.exit(0) in a startup hook).
            self.parts.pipe.fail(code or ExitCode.FAILURE, message)
        return int(code)

    # --- plumbing -------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = own_task(coro, name)
        self._framework_tasks.add(task)
        task.add_done_callback(self._framework_task_done)
        return task

    def _framework_task_done(self, task: asyncio.Task[Any]) -> None:
        self._framework_tasks.discard(task)
        self.service_tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            _log.error("internal task failed", task=task.get_name(), exc_info=exc)
            self.outcome.fail(f"{task.get_name()} failed: {error_text(exc)}", exc)
            self.dispatch(Event.SHUTDOWN)
