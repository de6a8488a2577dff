"""``on_signal``: async handlers for the signals the framework does not own.

Handlers are registered per daemon (``Hooks.signals``) and checked at
decoration. In the daemon, a run-phase service (:mod:`._services`) installs a
loop signal handler for each signal, which only asks the handler's runner for
a run. One runner per handler: runs never overlap, signals that arrive during
a run coalesce into one more, a handler that raises is logged at error and the
daemon keeps running. Once shutdown begins no run starts; at the step where
servers stop accepting, running handlers are cancelled and awaited (within
``shutdown_timeout``), so shutdown hooks never race a handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
from typing import TYPE_CHECKING

import structlog

from ._hooks import call_async, check_hook, describe, in_own_context
from ._kept_signals import keep_signal_handler
from ._outcome import raised
from ._own_tasks import cancel_task, own_task
from ._services import Service
from ._signal_mask import own_signal
from ._user_exit import EXIT_REQUESTS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._hooks import HookFunction
    from ._services import RuntimeHandle

__all__ = ["REFUSED", "SignalService", "check_signal", "signal_service"]

_log = structlog.get_logger("aiodaemon")

_SHUTDOWN = "it stops the daemon gracefully: use @aiodaemon.on_shutdown"
_FAULT = "a fault cannot be handled on the event loop (see the faulthandler module)"

#: Signals ``on_signal`` refuses, and what to use instead.
REFUSED: dict[int, str] = {
    signal.SIGTERM: _SHUTDOWN,
    signal.SIGINT: _SHUTDOWN,
    signal.SIGHUP: "it reloads the daemon: use @aiodaemon.on_reload",
    signal.SIGUSR1: (
        "it reopens the log files (logrotate): use @aiodaemon.on_reload to reopen files of your own"
    ),
    signal.SIGUSR2: (
        "it starts a zero-downtime upgrade (aiodaemon upgrade): use @aiodaemon.on_startup "
        "and @aiodaemon.on_shutdown, which run in the new and the old process"
    ),
    signal.SIGCHLD: (
        "it belongs to the event loop's child watcher: start children with "
        "asyncio.create_subprocess_* and await their wait()"
    ),
    signal.SIGKILL: "it cannot be caught",
    signal.SIGSTOP: "it cannot be caught",
    signal.SIGSEGV: _FAULT,
    signal.SIGBUS: _FAULT,
    signal.SIGFPE: _FAULT,
    signal.SIGILL: _FAULT,
}


def check_signal(signum: object) -> int:
    """Return ``signum`` as an int if ``on_signal`` may handle it.

    Raises:
        TypeError: ``signum`` is not an int (a ``signal.Signals`` is one).
        ValueError: not a signal number, or one the framework owns or that
            cannot be handled; the message names what to use instead.
    """
    if isinstance(signum, bool) or not isinstance(signum, int):
        raise TypeError(f"on_signal: a signal number is needed, not {signum!r}")
    if signum not in signal.valid_signals():
        raise ValueError(f"on_signal: {signum} is not a signal number")
    reason = REFUSED.get(signum)
    if reason is not None:
        raise ValueError(f"on_signal({signal.Signals(signum).name}) is refused: {reason}")
    return int(signum)


def check_handler(signum: object, fn: object) -> int:
    """Check a registration at decoration time; return the signal number.

    Raises:
        TypeError: ``fn`` is not an async function of zero or one argument,
            or ``signum`` is not an int.
        ValueError: see :func:`check_signal`.
    """
    number = check_signal(signum)
    check_hook(fn, "on_signal handler")
    return number


def signal_name(signum: int) -> str:
    """``SIGWINCH``, or ``SIGRTMIN+3`` for a real-time signal."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"


class _Runner:
    """Runs of one handler: never two at once, requests during a run coalesce into one more."""

    def __init__(self, fn: HookFunction, signum: int, runtime: RuntimeHandle) -> None:
        self.fn = fn
        self.signum = signum
        self.runtime = runtime
        self.task: asyncio.Task[None] | None = None
        self.again = False

    def request(self) -> None:
        if self.task is not None and not self.task.done():
            self.again = True
            return
        self.again = False
        self.task = own_task(self._run(), f"aiodaemon-on-signal-{signal_name(self.signum)}")

    async def _run(self) -> None:
        while True:
            try:
                # As a hook: a CancelledError or GeneratorExit it raises is its failure.
                call = functools.partial(call_async, self.fn, self.runtime.context)
                await in_own_context(call, describe(self.fn))
            except EXIT_REQUESTS as exc:
                # sys.exit() in the handler: a graceful shutdown, the handler named
                # as asking (left to the loop, it would be "a task").
                self.runtime.exit_requested(exc, f"signal handler {describe(self.fn)}")
                return
            except Exception as exc:
                # Like a failing reload hook: logged, and the daemon goes on.
                _log.error(
                    "signal handler failed",
                    signal=signal_name(self.signum),
                    handler=describe(self.fn),
                    exc_info=raised(exc),
                )
            if not self.again:
                return
            self.again = False

    async def cancel(self) -> None:
        """Cancel a running handler and wait until it has finished."""
        self.again = False
        task = self.task
        if task is None or task.done():
            return
        # Run by a gather's task, not ours: the framework's own request, said so.
        cancel_task(task)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _log.info(
            "signal handler cancelled",
            signal=signal_name(self.signum),
            handler=describe(self.fn),
        )


class SignalService(Service):
    """Loop signal handlers for every ``on_signal`` registration of one daemon."""

    name = "on_signal"

    def __init__(self, runtime: RuntimeHandle, handlers: Mapping[int, Sequence[HookFunction]]):
        self.runners = {
            signum: [_Runner(fn, signum, runtime) for fn in fns] for signum, fns in handlers.items()
        }
        self.accepting = True

    async def start(self) -> None:
        """Install the loop signal handlers (they only request runs)."""
        loop = asyncio.get_running_loop()
        for signum in self.runners:
            own_signal(signum)
            keep_signal_handler(loop, signum, self._deliver, signum)

    def _deliver(self, signum: int) -> None:
        if not self.accepting:
            return
        for runner in self.runners[signum]:
            runner.request()

    def not_ready(self) -> None:
        """Shutdown began: signals from now on start no run, nor do those coalesced before."""
        self.accepting = False
        for runners in self.runners.values():
            for runner in runners:
                # The one more run a signal during a run asked for would begin
                # when that run ends, after the stop (in the drain delay, say).
                runner.again = False

    async def stop_accepting(self) -> None:
        """Cancel the runs still going, before the shutdown hooks close what they use."""
        self.accepting = False
        await asyncio.gather(*(r.cancel() for rs in self.runners.values() for r in rs))

    async def close(self) -> None:
        """Nothing to undo: the loop's handlers stay, and start no run any more.

        Removing one would give its signal back its default action, which for
        most is to end the process, until ``SIG_IGN`` was set: a signal in
        between killed a stopping daemon. They go with the loop's close, where
        they are held back and then ignored (``ignoring_late_signals``).
        """


def signal_service(runtime: RuntimeHandle) -> SignalService | None:
    """The service factory: None when the daemon registered no ``on_signal`` handler."""
    handlers = runtime.hooks.signals
    return SignalService(runtime, handlers) if handlers else None
