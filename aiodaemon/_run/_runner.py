"""The run phase's runner: the parts acquired before the loop in, the exit status out.

Like :class:`asyncio.Runner`, :func:`run_daemon` makes the event loop, runs one
:class:`._runtime.Runtime`'s life on it to the end and closes it. ``sys.exit()``
or ``KeyboardInterrupt`` raised in a task of the program leaves the loop (asyncio
lets them out): the runner takes it as a request to end (:mod:`._user_exit`) and
runs the life on to its graceful end; one a process pool's worker raised is
that task's failure instead. Then it says how the run ended: the
launcher's verdict, the ``exit`` record, the failure on the terminal when the
log went elsewhere; and it leaves the log drain what is left of the shutdown
budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import time
import traceback
from typing import TYPE_CHECKING

import structlog

from .._prefork._messages import write_line
from ..exceptions import DaemonError, ExitCode, StartupError
from ._exit_notice import say_forced_exit, tell_exit
from ._loop import new_event_loop
from ._outcome import error_text
from ._own_tasks import OwnTask
from ._runtime import Runtime
from ._shutdown import LIFECYCLE_TASK
from ._signal_mask import ignoring_late_signals
from ._user_exit import EXIT_REQUESTS, from_another_process

if TYPE_CHECKING:
    from .._logs._logwriter import LogWriter
    from .._prefork._config import Options
    from .._prefork._control_socket import ControlSocket
    from .._prefork._logsinks import LogTargets
    from .._prefork._pidfile import Pidfile
    from .._prefork._readiness import ReadinessPipe
    from .._prefork._sockets import Listeners
    from ._hooks import Hooks, MainTarget
    from ._services import ServiceFactory
    from ._systemd import Notifier

__all__ = ["DaemonParts", "run_daemon"]

_log = structlog.get_logger("aiodaemon")

#: Seconds to wait for each released backstop thread at the end of a run.
_BACKSTOP_JOIN = 1.0


class DaemonParts:
    """Everything acquired before the loop exists, handed to the run phase."""

    # A plain class, not a dataclass: defining one costs every start ~0.3 ms.
    __slots__ = (
        "control",
        "factories",
        "foreground",
        "listeners",
        "log_targets",
        "logs",
        "notifier",
        "options",
        "pidfile",
        "pipe",
        "terminal",
    )

    def __init__(
        self,
        options: Options,
        listeners: Listeners | None,
        pidfile: Pidfile | None,
        pipe: ReadinessPipe,
        notifier: Notifier | None,
        logs: LogWriter,
        log_targets: LogTargets,
        foreground: bool,
        factories: list[ServiceFactory] | None = None,
        control: ControlSocket | None = None,
        terminal: tuple[int, int] | None = None,
    ) -> None:
        self.options = options
        self.listeners = listeners
        self.pidfile = pidfile
        self.pipe = pipe
        self.notifier = notifier
        self.logs = logs
        self.log_targets = log_targets
        self.foreground = foreground
        self.factories: list[ServiceFactory] = [] if factories is None else factories
        self.control = control
        #: a foreground daemon's controlling terminal at start: its hang-up is a stop.
        self.terminal = terminal


def run_daemon(main: MainTarget, hooks: Hooks, parts: DaemonParts) -> int:
    """Run the program to its end and return the exit status.

    Whatever happens, the launcher has its verdict when this returns; the
    caller's stack then releases the rest (listeners, log drain, pidfile).
    """
    runtime = Runtime(main, hooks, parts)
    # Startup hooks and signal handlers registered from now on would never run.
    hooks.running = True
    try:
        return _live_on_a_loop(runtime)
    finally:
        hooks.running = False


def _live_on_a_loop(runtime: Runtime) -> int:
    """Make the loop, run the life on it to its end, close it; the exit status."""
    parts = runtime.parts
    try:
        loop = new_event_loop(parts.options.uvloop)
    except StartupError as exc:
        _log.error("startup failed", error=str(exc))
        runtime.outcome.fail(str(exc), exc, exc.exit_code)
    else:
        try:
            asyncio.set_event_loop(loop)
            task = OwnTask(runtime.live(), loop=loop, name=LIFECYCLE_TASK)
            while True:
                try:
                    loop.run_until_complete(task)
                    break
                except EXIT_REQUESTS as exc:
                    # sys.exit() or KeyboardInterrupt in a task of the program:
                    # asyncio lets it out of the loop; the life goes on to a
                    # graceful shutdown with the status it asks for.
                    if task.done():
                        runtime.note_exit_request(exc, "a task")
                        break
                    if from_another_process(exc):
                        # A process pool's call that failed so (its worker had
                        # Ctrl-C too): the failure of the task that awaited it,
                        # which keeps it as its exception, not a request to end.
                        continue
                    loop.call_soon(runtime.exit_requested, exc, "a task")
                except RuntimeError:
                    if task.done() or loop.is_closed() or loop.is_running():
                        raise
                    # "Event loop stopped before Future completed": the program
                    # called loop.stop(). The loop is the daemon's: the life goes
                    # on to a graceful shutdown, a failure that says what to use.
                    loop.call_soon(runtime.loop_stopped)
        except (Exception, asyncio.CancelledError) as exc:
            # A bug of ours must still end in a logged traceback, a released
            # launcher and a removed pidfile, never in a silent death. So must
            # a cancellation of the life's task that reached it anyway (the
            # program's asyncio.Task.cancel(t), past OwnTask's refusal).
            _log.exception("internal error")
            runtime.outcome.fail(f"internal error: {error_text(exc)}", exc)
        finally:
            if parts.notifier is not None:
                # What a busy manager has not taken yet waits for it, after the
                # loop, within what is left of the shutdown budget (see _finish).
                parts.notifier.detach(runtime.shutdown.deadline)
            asyncio.set_event_loop(None)
            runtime.forced.release_loop(loop, runtime.lifecycle)
            # The loop's close gives its signals back their default action. A
            # uvloop that failed to start stays "running" and refuses to close.
            with ignoring_late_signals(), contextlib.suppress(RuntimeError):
                loop.close()
    return _finish(runtime)


def _finish(runtime: Runtime) -> int:
    """Give the launcher its verdict, say how it ended; return the final status."""
    code = runtime.release_launcher()
    if runtime.parts.notifier is not None:
        # What a stalled manager never took is said before the daemon's last record.
        runtime.parts.notifier.flush()
    main, outcome, options = runtime.main, runtime.outcome, runtime.options
    if inspect.iscoroutine(main) and inspect.getcoroutinestate(main) == inspect.CORO_CREATED:
        # A coroutine object that never ran is closed, not left to warn.
        main.close()
    forced = runtime.shutdown.wait_children()
    if forced is not None:
        # Its children killed past the budget: a failed stop, said by the exit record too.
        outcome.force(ExitCode.SHUTDOWN_TIMEOUT, forced)
        code = int(ExitCode.SHUTDOWN_TIMEOUT)
        say_forced_exit(code, forced)
    if runtime.parts.logs.protects_stdio:
        # Loaded already with the output files (see _logging): nothing imported here.
        from .._logs._fullstdio import tell_losses_at_exit

        # What a --stdout/--stderr file still losing output has lost, before
        # the record that is the daemon's last.
        tell_losses_at_exit()
    # reason: null after a graceful end, as the stop watching hears it (the key
    # is always there: a reader need not tell "graceful" from "not written").
    # Some reasons (a stop before ready) have no record of their own.
    _log.info("exit", status=code, reason=outcome.message)
    if forced is None:
        # A stop that watches hears it too (a forced exit from here on says so after).
        tell_exit(code, outcome.message)
    # A forced exit said itself on stderr already.
    failure = outcome.message if forced is None else None
    if runtime.parts.foreground and failure and (options.log_file or options.syslog):
        # The log went elsewhere; the person at the terminal still sees why.
        if outcome.exception is not None and not isinstance(outcome.exception, DaemonError):
            # A stderr the program closed cannot take it; the log has it.
            with contextlib.suppress(ValueError, OSError):
                traceback.print_exception(outcome.exception, file=sys.stderr)
        # As written (a multi-line message stays whole, as the kit reads it).
        write_line(f"aiodaemon: {failure}", sys.stderr)
    # Released by now (cancelled, or their watch over): each ends as soon as it
    # runs. Joined, so that a later run() in this process finds no thread of
    # this one (a detach refuses to fork while other threads run).
    for backstop in runtime.backstops:
        backstop.join(_BACKSTOP_JOIN)
    runtime.forced.join_watch(_BACKSTOP_JOIN)
    runtime.shutdown.wait_threads()
    # Draining the log queue (when the caller's stack closes) is the last
    # step of the shutdown budget.
    left = options.shutdown_timeout
    if runtime.shutdown.deadline is not None:
        left = runtime.shutdown.deadline - time.monotonic()
    runtime.parts.log_targets.drain_timeout = max(0.5, left)
    return code
