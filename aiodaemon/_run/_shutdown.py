"""The shutdown sequence: named steps within one budget, whatever began it.

Begun by a stop signal, a request, ``main`` returning or a failed startup hook:

1. ``not_ready`` — ``STOPPING=1`` and every service's ``not_ready()``;
2. ``drain_delay`` — keep accepting for the runtime's ``drain_delay`` seconds
   (only once ready was reported: nobody was sent to a daemon never ready);
3. ``stop_accepting`` — every service's ``stop_accepting()``, after the
   startup hooks still running (a stop during startup) were cancelled;
4. ``wait_finished`` — every service's ``wait_finished()``;
5. ``hooks`` — shutdown hooks and lifespan exits in reverse registration
   order (shutdown hooks whenever startup began; a lifespan's exit only if
   its setup completed);
6. ``cancel_rest`` — a reload still running is cancelled and awaited first,
   then ``main`` (each for at most half of what is left of the budget), as
   ``asyncio.run()`` does, so that its
   TaskGroup ends its children in its own order; then every remaining task is
   cancelled (but those main's cancellation reached) and awaited, async
   generators are closed and the default executor shut down (which waits for
   the calls still running in it);
7. ``close`` — every service's ``close()``, then the service tasks end.

Steps 3-7 share one budget, ``shutdown_timeout``, counted from the end of
step 2; past it the stuck tasks are logged with their await chain and the
daemon exits with status 4. A backstop thread does the same if sync code
blocks the loop. A second stop signal exits at once (:mod:`._forced`).

The process's own end (steps 8 and 9: the program's threads, the
interpreter's exit) stays within the same budget: :mod:`._process_end`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import threading
import time
from asyncio import base_subprocess
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from .._logs._logwriter import start_bounded
from ..exceptions import ExitCode
from ._children import kill_children_at_forced_exit, leftover_children, wait_children
from ._exit_notice import expect_stop_claim
from ._forced import BackstopClock, start_backstop
from ._hooks import (
    HookError,
    Lifespan,
    call_async,
    entry_name,
    in_own_context,
    warn_returned,
)
from ._loop import await_chain, thread_stack
from ._outcome import error_text, raised
from ._own_tasks import OwnTask, cancel_task, every_own_task, own_task, with_own_tasks
from ._process_end import executor_workers, wait_program_threads
from ._services import CONTROL_CONNECTION
from ._state import Event, State
from ._user_exit import EXIT_REQUESTS

if TYPE_CHECKING:
    from types import FrameType

    from ._runtime import Runtime
    from ._services import Service

__all__ = ["LIFECYCLE_TASK", "Shutdown"]

_log = structlog.get_logger("aiodaemon")

#: Names of the framework's own tasks, never cancelled by the sequence.
LIFECYCLE_TASK = "aiodaemon-lifecycle"
_STOP_TASK = "aiodaemon-stop"
#: Seconds a cancelled reload's waiters get to send their answer.
_ANSWER_TIMEOUT = 1.0


class Shutdown:
    """The shutdown sequence of one run."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        runtime.add_forced_exit_step(kill_children_at_forced_exit)
        #: the ``time.monotonic()`` end of the budget, once step 2 is over.
        self.deadline: float | None = None
        #: the backstop thread's, once it is started.
        self._backstop_clock = BackstopClock(float("inf"))
        # The loop thread and the backstop thread may both time out; one exits.
        self._exit_claim = threading.Lock()
        #: the loop and its thread, for the backstop's report of what blocks it.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        runtime.add_state_listener(self._on_state)

    def _on_state(self, old: State, new: State) -> None:
        if old is State.STARTING and new is State.RUNNING:
            # From now on a lone stop signal is read by the loop or, if sync
            # code blocks it for good, ends the process (see watch_unread_stop).
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
            rt = self.runtime
            budget = rt.drain_delay + rt.options.shutdown_timeout + 1.0
            rt.forced.watch_unread_stop(budget, self._stop_unread)

    def _stop_unread(self, stopped: str | None) -> None:
        """On the watcher's thread: a stop signal the blocked loop did not read in time.

        Args:
            stopped: why the watcher itself woke late (see BackstopClock), if it did.
        """
        # The stop that sent the signal may be waiting on its claim (see _stop).
        expect_stop_claim()
        self._exit_blocked(stopped, "event loop blocked: the shutdown never began")

    async def run(self) -> None:
        """Steps 1 and 2, then the rest within ``shutdown_timeout``."""
        rt = self.runtime
        timeout = rt.options.shutdown_timeout
        if rt.parts.notifier is not None:
            rt.parts.notifier.stopping()
        for service in rt.services:
            _guard(service, "not_ready", service.not_ready)
        drain = rt.drain_delay if rt.ready else 0.0
        _log.info("shutdown started", timeout=timeout, drain_delay=drain)
        # The in-loop deadline below cannot fire while sync code blocks the loop.
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        backstop = threading.Timer(drain + timeout + 1.0, self._backstop)
        backstop.name = "aiodaemon-shutdown-backstop"
        backstop.daemon = True
        self._backstop_clock = BackstopClock(backstop.interval)
        if start_backstop(backstop, "the shutdown's deadline while the loop is blocked"):
            rt.backstops.append(backstop)
        if drain > 0:
            await asyncio.sleep(drain)
        self.deadline = time.monotonic() + timeout
        sequence = own_task(self._steps(), _STOP_TASK)
        done, _ = await asyncio.wait([sequence], timeout=timeout)
        if not done:
            reason = f"shutdown took longer than {timeout}s"
            # Here after the backstop's own time: it could not run either.
            stopped = self._backstop_clock.stopped()
            if stopped is not None:
                self.exit_now(ExitCode.SHUTDOWN_TIMEOUT, f"{reason} ({stopped})")
            self._report_stuck()
            self.exit_now(ExitCode.SHUTDOWN_TIMEOUT, reason)
        backstop.cancel()
        failed = None if sequence.cancelled() else sequence.exception()
        if failed is not None:
            # A step of ours raised (no thread left to shut the executor down):
            # the steps after it never ran, and the exit must not say all went well.
            _log.error("shutdown failed", exc_info=raised(failed))
            rt.outcome.fail(f"shutdown failed: {error_text(failed)}", failed)
        rt.dispatch(Event.STOPPED)
        _log.info("shutdown finished")

    async def _steps(self) -> None:
        rt = self.runtime
        startup = rt.startup_task
        if startup is not None and not startup.done():
            # A stop during startup: the hooks still running are cancelled
            # within the one shutdown budget, then the shutdown hooks run.
            cancel_task(startup)
            await asyncio.wait([startup])
        for service in rt.services:
            await _guard_async(service, "stop_accepting", service.stop_accepting)
        for service in rt.services:
            await _guard_async(service, "wait_finished", service.wait_finished)
        # A server that ran with signal handlers of its own may have put back
        # stale ones as it stopped: a second stop signal must still force the exit.
        rt.forced.keep()
        if startup is not None:
            await self._run_hooks()
        rt.forced.keep()
        await self._cancel_rest()
        # Before the services close: an executor call the program left running
        # may hold the end up for long, and meanwhile the control socket still
        # says "stopping" (closed, `status` read "running" from the pidfile).
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        if executor_workers():
            _check_threads_begin()
        await loop.shutdown_default_executor()
        for service in rt.services:
            await _guard_async(service, "close", service.close)
        await cancel_all(rt.service_tasks)

    async def _run_hooks(self) -> None:
        rt = self.runtime
        for entry in reversed(rt.hooks.shutdown):
            name = entry_name(entry)
            rt.hook_running = ("shutdown", name, time.monotonic())
            try:
                # Each in its own contextvars Context (a lifespan: its setup's).
                if isinstance(entry, Lifespan):
                    gen = rt.entered.pop(entry, None)
                    if gen is not None:
                        context = rt.lifespan_contexts.pop(entry, None)
                        await in_own_context(functools.partial(entry.exit, gen), name, context)
                else:
                    result = await in_own_context(
                        functools.partial(call_async, entry, rt.context), name
                    )
                    warn_returned("shutdown", name, result)
            except EXIT_REQUESTS as exc:
                # The program asks to end: it is ending; the other hooks still run.
                rt.note_exit_request(exc, f"shutdown hook {name}")
            except HookError as exc:
                _log.error("lifespan failed", hook=entry_name(entry), error=str(exc))
                rt.outcome.fail(str(exc), exc)
            except Exception as exc:
                _log.error("shutdown hook failed", hook=entry_name(entry), exc_info=raised(exc))
            finally:
                rt.hook_running = None

    async def _cancel_rest(self) -> None:
        rt = self.runtime
        reload = rt.reload_task
        if reload is not None and not reload.done():
            # First the reload under way: cancelled, it answers who waits for it
            # ("cancelled: the daemon is stopping"), and they get to send that
            # answer (a control connection) before the rest is cancelled. For
            # half of what is left of the budget at most: a hook that swallows
            # its cancellation and goes on must not keep main from its own
            # cancellation; the reload is then cancelled again with the rest.
            cancel_task(reload)
            await asyncio.wait([reload], timeout=self._half_left())
            waiters = rt.reloads.take_answered()
            if waiters:
                await asyncio.wait(waiters, timeout=_ANSWER_TIMEOUT)
        main = rt.main_task
        reached: set[asyncio.Task[Any]] = set()
        if main is not None and not main.done():
            # main first, alone, as asyncio.run() does. Cancelled beside the
            # rest, the children of its TaskGroup (or gather) were cancelled
            # twice, by us and by their group's exit, and the second one landed
            # in their own cleanup's await (a flush, a job handed back): cut
            # short, nothing logged. Half of what is left of the budget, then
            # the rest is cancelled anyway: a cleanup may wait for a task only
            # a cancellation ends (a 3.12 Server.wait_closed() for its clients).
            earlier = {t for t in with_own_tasks() if t.cancelling()}
            cancel_task(main)
            await asyncio.wait([main], timeout=self._half_left())
            # What main's cancellation reached (main's own task, its group's
            # children) and is still cleaning up: never cancelled a second time.
            reached = {t for t in with_own_tasks() if t.cancelling() and t not in earlier}
        keep = {asyncio.current_task(), *self.runtime.service_tasks}
        ours = (LIFECYCLE_TASK, _STOP_TASK, CONTROL_CONNECTION)
        pending = [t for t in with_own_tasks() if t not in keep and t.get_name() not in ours]
        # asyncio's own task connecting a new subprocess's pipes ends by itself
        # within a few loop turns. Cancelled beside the task that started the
        # subprocess (found in create_subprocess_exec), it never connected them,
        # and that task's cleanup waited for the child's exit for ever (CPython
        # gh-125502, asyncio's loop): the stop ended at its timeout, status 4.
        spared = [t for t in pending if t in reached or _connects_pipes(t)]
        cut = [t for t in pending if t not in spared and not t.done()]
        _warn_cut(cut)
        await cancel_all(cut)
        if spared:
            await asyncio.wait(spared)
        for task in pending:
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                _log.error("task failed during shutdown", task=task.get_name(), exc_info=exc)
        _report_unretrieved(asyncio.get_running_loop())

    def _half_left(self) -> float:
        """Half of the seconds left of the budget (of ``shutdown_timeout`` before it began)."""
        if self.deadline is None:
            return self.runtime.options.shutdown_timeout / 2
        return max(0.0, self.deadline - time.monotonic()) / 2

    def _report_stuck(self) -> None:
        stuck = [
            t
            for t in with_own_tasks()
            if t is not asyncio.current_task() and not _waits_for_own_task(t)
        ]
        # The stop sequence only waits for the program's tasks reported beside
        # it (main, a task swallowing its cancellation): named, it pointed at
        # aiodaemon instead. Alone, its stack is the only clue left.
        if any(t.get_name() != _STOP_TASK for t in stuck):
            stuck = [t for t in stuck if t.get_name() != _STOP_TASK]
        for task in stuck:
            _log.error("task stuck at shutdown", task=task.get_name(), stack=await_chain(task))
        # A task that awaited run_in_executor() was cancelled, but its call runs
        # on (a subprocess.run() waiting for its child, a blocking read): the
        # sequence's stack ends in asyncio's shutdown_default_executor, and only
        # the worker's own stack says which call of the program's it waits for.
        frames = sys._current_frames()
        for thread in executor_workers():
            frame = frames.get(thread.ident) if thread.ident is not None else None
            if frame is not None and _runs_a_call(frame):
                _log.error(
                    "executor call still running at shutdown",
                    thread=thread.name,
                    stack=thread_stack(frame),
                )

    def _backstop(self) -> None:
        self._exit_blocked(self._backstop_clock.stopped(), "event loop blocked")

    def _exit_blocked(self, stopped: str | None, blocked: str) -> NoReturn:
        """From a backstop thread: the shutdown's budget is over, and the loop could not end it.

        Args:
            stopped: why the backstop woke late (the process did not run), if it did.
            blocked: the cause otherwise; the task holding the loop is logged with it.
        """
        if stopped is None:
            self._report_blocking()
        self.exit_now(
            ExitCode.SHUTDOWN_TIMEOUT,
            f"shutdown took longer than {self.runtime.options.shutdown_timeout}s "
            f"({stopped or blocked})",
        )

    def _report_blocking(self) -> None:
        """From the backstop: the task holding the blocked loop, with the call it blocks in.

        The loop cannot report its stuck tasks itself; the one that matters is
        the one running, and its await chain is the loop thread's own stack.
        """
        frames = sys._current_frames()
        frame = None if self._loop_thread is None else frames.get(self._loop_thread)
        if frame is None or self._loop is None:
            return
        task = asyncio.current_task(self._loop)
        _log.error(
            "task stuck at shutdown",
            task=None if task is None else task.get_name(),
            stack=thread_stack(frame),
        )

    def wait_children(self) -> str | None:
        """Before the ``exit`` record: the children the interpreter's exit would wait for.

        See :func:`._children.wait_children`; what the daemon claimed is
        released first if there are any.

        Returns:
            The forced exit's reason if some were killed at the budget's end.
        """
        timeout = self.runtime.options.shutdown_timeout
        deadline = self.deadline if self.deadline is not None else time.monotonic() + timeout
        return wait_children(deadline, timeout, self._release_claims)

    def wait_threads(self) -> None:
        """Step 8: give the program's own threads what is left of the budget.

        See :func:`._process_end.wait_program_threads`; what the daemon claimed
        is released first if they run.
        """
        timeout = self.runtime.options.shutdown_timeout
        # No deadline: no shutdown sequence ran (the loop could not be created).
        deadline = self.deadline if self.deadline is not None else time.monotonic() + timeout
        wait_program_threads(deadline, timeout, self._release_claims)

    def _release_claims(self) -> None:
        """Close the listeners and the control socket, remove their files and the pidfile.

        Each only if still ours, as the release at the process's end does (which
        then finds them done): never a file an upgrade's successor serves on.
        """
        parts = self.runtime.parts
        for release in (
            None if parts.listeners is None else parts.listeners.close,
            None if parts.control is None else parts.control.close,
            None if parts.pidfile is None else parts.pidfile.remove,
        ):
            if release is not None:
                try:
                    release()
                except OSError:
                    _log.exception("internal error")

    def exit_now(self, code: int, reason: str) -> NoReturn:
        """Leave after a timeout: log why, drain the log briefly, do the minimum, exit.

        Never called from a signal handler: a stop signal arriving meanwhile
        runs :class:`._forced.ForcedExit`, which shares no lock with this.
        """
        if not self._exit_claim.acquire(blocking=False):
            # The other thread is already on its way out.
            threading.Event().wait()
        rt = self.runtime
        for name, pid in leftover_children():
            # Killed by the forced exit's steps below, once the log is closed.
            _log.error("child process killed at exit", process=name, child_pid=pid)
        # Now, while the log is open to say so (the forced exit below would
        # do it unsaid): the subprocesses the program started go with us.
        killed = rt.forced.kill_group()
        if killed:
            _log.error("process group killed at exit", processes=killed)
        _log.critical("forced exit", reason=reason, status=code)
        rt.outcome.force(code, reason)
        notifier = rt.parts.notifier
        if notifier is not None:
            # Its held messages (a stalled manager) get as long as the log, below.
            notifier.detach(time.monotonic() + min(1.0, rt.options.shutdown_timeout))
        rt.release_launcher()
        if notifier is not None:
            notifier.flush()
        if rt.parts.logs.protects_stdio:
            from .._logs._fullstdio import tell_losses_at_exit

            # Unflushed: the blocked main thread may hold a stream's lock.
            tell_losses_at_exit(flush=False)
        _log.info("exit", status=int(rt.outcome.code), reason=reason)
        rt.parts.logs.close(min(1.0, rt.options.shutdown_timeout))
        if rt.parts.listeners is not None:
            # Not a signal handler: the unix socket files can go too.
            rt.parts.listeners.close()
        if rt.parts.control is not None:
            rt.parts.control.close()
        rt.forced.exit(rt.outcome.code, reason)


def _check_threads_begin() -> None:
    """Start a thread that does nothing and join it; raise if it cannot begin.

    The loop's ``shutdown_default_executor()`` starts a thread with
    ``Thread.start()``, which waits for it to begin without a limit, the loop
    held meanwhile (its shutdown timeout with it). Out of memory (``RLIMIT_AS``)
    a thread may be created but never begin, and with the backstop in the same
    state the stop waited for ever. A thread that begins now leaves its stack
    and memory to the next one.

    Raises:
        RuntimeError: no thread can be started, or it did not begin in time.
    """
    probe = threading.Thread(target=lambda: None, name="aiodaemon-thread-probe", daemon=True)
    # Every signal blocked, as in the backstops: one the main thread holds back must not land here.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        start_bounded(probe)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    probe.join()


def _runs_a_call(frame: FrameType) -> bool:
    """Whether a thread pool worker at ``frame`` runs a submitted call (else it is idle)."""
    here: FrameType | None = frame
    while here is not None:
        code = here.f_code
        if code.co_name == "run" and code.co_filename.endswith(_WORK_ITEM_FILE):
            return True
        here = here.f_back
    return False


#: Where ``concurrent.futures``' ``_WorkItem.run`` calls what was submitted.
_WORK_ITEM_FILE = os.path.join("concurrent", "futures", "thread.py")


def _report_unretrieved(loop: asyncio.AbstractEventLoop) -> None:
    """Hand the loop's exception handler each failed task whose exception nobody read.

    asyncio reports one only when the task is collected: a task the program
    keeps (in a list, never awaited) at the interpreter's exit, once the log
    is closed (and with uvloop not at all), so the failure was never logged.
    Its registry holds every task, weakly, done ones too (``_all_tasks`` on
    3.11, ``_scheduled_tasks`` from 3.12 on; a Python without either is not
    looked at). Reading the exception here keeps it from a second report.
    """
    registry: Iterable[object] = getattr(
        asyncio.tasks, "_all_tasks", getattr(asyncio.tasks, "_scheduled_tasks", ())
    )
    # The framework's own tasks are not in it (see _own_tasks).
    for task in [*registry, *every_own_task()]:
        if not isinstance(task, asyncio.Task) or task.get_loop() is not loop:
            continue
        if task.done() and not task.cancelled() and getattr(task, "_log_traceback", False):
            context = {
                "message": "Task exception was never retrieved",
                "exception": task.exception(),
                "future": task,
            }
            loop.call_exception_handler(context)


def _waits_for_own_task(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` (the shutdown sequence, main's wrapper) only waits in ``in_own_context``.

    A hook, or ``main``, runs in a task of its own, named after it: that one is
    reported with where it waits. The task awaiting it would be reported as
    stuck in aiodaemon's code, which names nothing of the program's.
    """
    coro: Any = task.get_coro()
    innermost = None
    while coro is not None and (frame := getattr(coro, "cr_frame", None)) is not None:
        innermost = frame.f_code
        coro = getattr(coro, "cr_await", None)
    return innermost is getattr(in_own_context, "__code__", None)


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        cancel_task(task)
    if pending:
        await asyncio.wait(pending)


#: Task names listed at most in the warning of :func:`_warn_cut`.
_CUT_NAMES = 10


def _warn_cut(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Warn that the program's ``tasks``, still running, are about to be cancelled.

    What ``main``'s cancellation did not reach (a handler of a server the
    framework could not wait for, a task a hook started) is cut here, mid-way:
    without a line saying so a stop looked clean while requests were dropped.
    """
    cut = [t for t in tasks if not isinstance(t, OwnTask)]
    if cut:
        _log.warning(
            "tasks cancelled at shutdown",
            tasks=len(cut),
            names=sorted(t.get_name() for t in cut)[:_CUT_NAMES],
        )


def _connects_pipes(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is asyncio's own, connecting a new subprocess's pipes."""
    return getattr(task.get_coro(), "cr_code", None) is _CONNECT_PIPES


#: The code of the coroutine asyncio runs as a task to connect a subprocess's pipes.
_CONNECT_PIPES = base_subprocess.BaseSubprocessTransport._connect_pipes.__code__


def _guard(service: Service, step: str, call: Callable[[], None]) -> None:
    try:
        call()
    except Exception:
        _log.exception("service step failed", service=service.name, step=step)


async def _guard_async(
    service: Service, step: str, call: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    try:
        await call()
    except Exception:
        _log.exception("service step failed", service=service.name, step=step)
