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
6. ``cancel_rest`` — every remaining task is cancelled and awaited, then
   async generators are closed and the default executor shut down (which
   waits for the calls still running in it);
7. ``close`` — every service's ``close()``, then the service tasks end.

Steps 3-7 share one budget, ``shutdown_timeout``, counted from the end of
step 2; past it the stuck tasks are logged with their await chain and the
daemon exits with status 4. A backstop thread does the same if sync code
blocks the loop. A second stop signal exits at once (:mod:`._forced`).

The process's own end stays within the same budget (plus a second's grace
for the last log drain and ``atexit`` functions), whatever the program left:

8. ``wait_threads`` — after the ``exit`` record, the program's non-daemon
   threads (a ``threading.Thread``), which the interpreter would join for
   ever, get what is left of the budget; the ones still running then are
   logged with their stack. Executor workers are left to the interpreter's
   exit, which ends idle ones at once (a busy one meets the backstop): ending
   them here would shut every executor of a program that goes on;
9. ``end_process`` — once everything acquired is released: if threads were
   left, the ``atexit`` functions run and the process leaves at once with
   status 4; else the interpreter exits as usual, and a backstop thread
   ends it with status 4 if its exit (an ``atexit`` function, a thread
   started meanwhile) outlasts the budget.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
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
from .._prefork._messages import flush_stdio
from ..exceptions import ExitCode
from ._exit_notice import expect_stop_claim, say_forced_exit, say_nowait
from ._forced import BackstopClock, start_backstop
from ._hooks import HookError, Lifespan, call_async, entry_name, in_own_context
from ._loop import await_chain, thread_stack
from ._outcome import error_text, raised
from ._services import CONTROL_CONNECTION
from ._state import Event, State
from ._user_exit import EXIT_REQUESTS

if TYPE_CHECKING:
    from types import FrameType

    from ._runtime import Runtime
    from ._services import Service

__all__ = ["LIFECYCLE_TASK", "Shutdown", "end_process"]

_log = structlog.get_logger("aiodaemon")

#: Names of the framework's own tasks, never cancelled by the sequence.
LIFECYCLE_TASK = "aiodaemon-lifecycle"
_STOP_TASK = "aiodaemon-stop"
#: Seconds a cancelled reload's waiters get to send their answer.
_ANSWER_TIMEOUT = 1.0
#: Seconds past the budget's end for the process's last steps (log drain, atexit).
EXIT_GRACE = 1.0


class Shutdown:
    """The shutdown sequence of one run."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        runtime.add_forced_exit_step(_kill_children_at_forced_exit)
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
        sequence = asyncio.create_task(self._steps(), name=_STOP_TASK)
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
            startup.cancel()
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
        if _executor_workers():
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
                    await in_own_context(functools.partial(call_async, entry, rt.context), name)
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
            # answer (a control connection) before the rest is cancelled.
            await cancel_all([reload])
            waiters = rt.reloads.take_answered()
            if waiters:
                await asyncio.wait(waiters, timeout=_ANSWER_TIMEOUT)
        keep = {asyncio.current_task(), *self.runtime.service_tasks}
        ours = (LIFECYCLE_TASK, _STOP_TASK, CONTROL_CONNECTION)
        pending = [t for t in asyncio.all_tasks() if t not in keep and t.get_name() not in ours]
        # asyncio's own task connecting a new subprocess's pipes ends by itself
        # within a few loop turns. Cancelled beside the task that started the
        # subprocess (found in create_subprocess_exec), it never connected them,
        # and that task's cleanup waited for the child's exit for ever (CPython
        # gh-125502, asyncio's loop): the stop ended at its timeout, status 4.
        spared = [t for t in pending if _connects_pipes(t)]
        await cancel_all(t for t in pending if t not in spared)
        if spared:
            await asyncio.wait(spared)
        for task in pending:
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                _log.error("task failed during shutdown", task=task.get_name(), exc_info=exc)
        _report_unretrieved(asyncio.get_running_loop())

    def _report_stuck(self) -> None:
        for task in asyncio.all_tasks():
            if task is asyncio.current_task() or _waits_for_own_task(task):
                continue
            _log.error("task stuck at shutdown", task=task.get_name(), stack=await_chain(task))
        # A task that awaited run_in_executor() was cancelled, but its call runs
        # on (a subprocess.run() waiting for its child, a blocking read): the
        # sequence's stack ends in asyncio's shutdown_default_executor, and only
        # the worker's own stack says which call of the program's it waits for.
        frames = sys._current_frames()
        for thread in _executor_workers():
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

    def wait_threads(self) -> None:
        """Step 8: give the program's own threads what is left of the budget.

        The interpreter joins every non-daemon thread before it exits, for as
        long as they run. They are joined here until the budget's end; the
        ones still running are logged, and :func:`end_process` does not wait
        for them. Executor threads are not waited for: the interpreter's exit
        ends idle ones (under the backstop), a process pool's manager thread
        with the pool's worker processes (joined here, never told to stop, it
        kept the daemon for the whole budget and its workers outlived it), and
        a program that goes on after ``run()`` keeps its executors.
        """
        timeout = self.runtime.options.shutdown_timeout
        # No deadline: no shutdown sequence ran (the loop could not be created).
        deadline = self.deadline if self.deadline is not None else time.monotonic() + timeout
        _END.deadline, _END.timeout = deadline, timeout
        workers = _executor_workers()
        threads = [t for t in _program_threads() if t not in workers]
        if not threads:
            return
        # The run is over; only the program's threads keep the process. What
        # the daemon claimed goes now, not when they end: a pidfile held that
        # long makes `start` say "already running" and start nothing, and a
        # listener left open queues clients nobody will answer.
        self._release_claims()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t for t in threads if t.is_alive()]
        if not stuck:
            return
        frames = sys._current_frames()
        for thread in stuck:
            frame = frames.get(thread.ident) if thread.ident is not None else None
            stack = thread_stack(frame) if frame else ""
            _log.error("thread still running at exit", thread=thread.name, stack=stack)
        names = ", ".join(t.name for t in stuck)
        reason = f"shutdown took longer than {timeout}s; threads still running: {names}"
        _log.critical("forced exit", reason=reason, status=ExitCode.SHUTDOWN_TIMEOUT)
        _END.forced = reason

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
        _log.critical("forced exit", reason=reason, status=code)
        rt.outcome.force(code, reason)
        notifier = rt.parts.notifier
        if notifier is not None:
            # Its held messages (a stalled manager) get as long as the log, below.
            notifier.detach(time.monotonic() + min(1.0, rt.options.shutdown_timeout))
        rt.release_launcher()
        if notifier is not None:
            notifier.flush()
        if rt.parts.logs.outputs:
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


class _ProcessEnd:
    """What the run leaves for the process's last step (:func:`end_process`)."""

    __slots__ = ("deadline", "forced", "timeout")

    def __init__(self) -> None:
        #: the ``time.monotonic()`` end of the budget, None until the run ended.
        self.deadline: float | None = None
        self.timeout = 0.0
        #: why the process leaves at once (threads still running), if it must.
        self.forced: str | None = None


# A process is one daemon: one end.
_END = _ProcessEnd()


def end_process(code: int) -> int:
    """Step 9, once everything the daemon acquired is released: end within the budget.

    Returns ``code`` for the interpreter's usual exit, with a backstop thread
    that ends it (status 4) if that exit outlasts the budget: the interpreter
    joins the threads started since step 8, then runs the ``atexit`` functions
    (multiprocessing's joins its children). When step 8 left threads running,
    it does not return: the ``atexit`` functions run here (bounded the same
    way) and the process leaves at once with status 4, as the interpreter
    would wait for those threads for ever.
    """
    end = _END
    if end.deadline is None:
        # The run phase never began: nothing of the program's ran.
        return code
    if end.forced is None:
        _arm_at_exit()
        if _ARMED is not None:
            # The program's own code runs next, and may go on with the daemon
            # over: its exit is marked again once the interpreter's begins.
            _exit_mark("withdraw")
        return code
    _start_backstop()
    status = ExitCode.SHUTDOWN_TIMEOUT
    flush_stdio()
    say_forced_exit(status, end.forced)
    atexit._run_exitfuncs()
    flush_stdio()
    os._exit(status)


def _arm_at_exit() -> None:
    """Start the backstop's clock when the interpreter begins to exit, not before.

    A program may catch the ``SystemExit`` of ``run()`` and go on (a report to
    upload, a second ``run()``): the bound is for the interpreter's exit, so it
    is armed by the interpreter's own first exit step, before it joins the
    threads (``threading._register_atexit``, private but there since 3.9).
    The thread is started now and parked until then: from that step on,
    Python 3.12 refuses to start a thread ("can't create new thread at
    interpreter shutdown"). Without the hook, the backstop starts now, as the
    next best thing.
    """
    global _ARMED
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        _start_backstop()
        return
    if _ARMED is not None:
        # Once per process: it reads the last run's budget when the exit begins.
        return
    exiting = threading.Event()
    parked = threading.Thread(
        target=_backstop_from_exit, args=(exiting,), name="aiodaemon-exit-backstop", daemon=True
    )
    if not _start_exit_backstop(parked):
        return
    register(functools.partial(_exit_begins, exiting))
    _ARMED = parked, exiting


def disarm_at_exit() -> None:
    """A new ``run()`` in this process: end the exit backstop the last one parked.

    Its thread would keep a detach from forking ("other threads run"); the new
    run parks its own at its end.
    """
    global _ARMED
    if _ARMED is None:
        return
    parked, exiting = _ARMED
    _ARMED = None
    _END.deadline = None  # woken without a budget: it leaves
    exiting.set()
    parked.join()


def _start_backstop() -> None:
    """End the process (status 4) if its exit outlasts the budget, and at least a grace."""
    backstop = threading.Timer(_left_at_exit(), _exit_overdue)
    backstop.name = "aiodaemon-exit-backstop"
    backstop.daemon = True
    _start_exit_backstop(backstop)


def _start_exit_backstop(thread: threading.Thread) -> bool:
    """Start the exit's backstop ``thread``; if it cannot start, say so on stderr (no log)."""
    if start_backstop(thread, "the exit's deadline", log=False):
        return True
    say_nowait("aiodaemon: cannot start the exit backstop thread; the exit is unbounded\n")
    return False


def _backstop_from_exit(exiting: threading.Event) -> None:
    # The parked backstop of _arm_at_exit: its clock starts with the interpreter's exit.
    exiting.wait()
    if _END.deadline is None:
        return  # disarmed for a new run (see disarm_at_exit)
    time.sleep(_left_at_exit())
    _exit_overdue()


def _exit_begins(exiting: threading.Event) -> None:
    """The interpreter's first exit step: start the parked backstop's clock.

    Also put :func:`_run_exit_functions` first among the ``atexit`` functions
    (they run last registered first), so that it runs all the others, and mark
    the daemon's last steps again (see :func:`end_process`).
    """
    global _EXIT_FUNCTIONS_WRAPPED
    _exit_mark("put_back")
    exiting.set()
    if not _EXIT_FUNCTIONS_WRAPPED:
        _EXIT_FUNCTIONS_WRAPPED = True
        atexit.register(_run_exit_functions)


def _run_exit_functions() -> None:
    """Run the ``atexit`` functions; if the backstop cut them short, leave the end to it.

    The backstop kills multiprocessing's daemonic children, and so ends the
    join of multiprocessing's exit function: the main thread would then go on
    to the interpreter's usual end with the program's status (0), racing the
    backstop's own exit with status 4 and often winning while the backstop
    wrote its line. Once the backstop has begun, the main thread waits for it.
    """
    global _RUNNING_EXIT_FUNCTIONS
    if _RUNNING_EXIT_FUNCTIONS:
        return  # our own entry, met by the call below
    _RUNNING_EXIT_FUNCTIONS = True
    atexit._run_exitfuncs()
    if _OVERDUE.is_set():
        threading.Event().wait()


def _exit_mark(step: str) -> None:
    """``withdraw`` or ``put_back`` the mark of the daemon's last steps, if its pidfile left one."""
    # Loaded with the run phase when there is a pidfile (see aiodaemon._launch._preload).
    marks = sys.modules.get(_EXIT_MARK_MODULE)
    if marks is not None:
        getattr(marks, step)()


#: See ``_prefork._exit_mark``; only looked up, never imported here.
_EXIT_MARK_MODULE = __name__.rsplit(".", 2)[0] + "._prefork._exit_mark"


def _left_at_exit() -> float:
    """Seconds the process's exit may still take: what is left of the budget, and a grace."""
    assert _END.deadline is not None
    return max(_END.deadline - time.monotonic(), 0.0) + EXIT_GRACE


#: The parked backstop and the event the interpreter's exit sets (see _arm_at_exit).
_ARMED: tuple[threading.Thread, threading.Event] | None = None
#: Set once the exit's backstop has begun to end the process (see _run_exit_functions).
_OVERDUE = threading.Event()
_EXIT_FUNCTIONS_WRAPPED = False
_RUNNING_EXIT_FUNCTIONS = False


def _exit_overdue() -> None:
    # On the backstop thread, while the main thread is stuck in the interpreter's exit.
    _OVERDUE.set()
    status = ExitCode.SHUTDOWN_TIMEOUT
    try:
        names = ", ".join(t.name for t in _program_threads())
        what = f"threads still running: {names}" if names else "atexit functions still running"
        # multiprocessing's exit function terminates its daemonic children; cut
        # short, it would leave them running for ever (one that ignores SIGTERM).
        children = _daemonic_children()
        if children:
            what += f"; daemonic children killed: {', '.join(map(str, children))}"
        # So do a process pool's workers, whose manager the exit was joining:
        # left, they would wait for work for ever.
        workers = _pool_workers()
        if workers:
            what += f"; process pool workers killed: {', '.join(map(str, workers))}"
        # And a manager's server, which its finalizer (run by the same exit
        # function, unless an atexit function stuck before it) would have shut down.
        servers = _manager_servers()
        if servers:
            what += f"; manager servers killed: {', '.join(map(str, servers))}"
        # Said before the kills: a killed child ends the main thread's join.
        budget = f"the process's exit took longer than the {_END.timeout}s shutdown budget"
        say_forced_exit(status, f"{budget}; {what}")
        for pid in [*children, *workers, *servers]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    finally:
        # Whatever failed above: the main thread waits for this exit.
        os._exit(status)


def _program_threads() -> list[threading.Thread]:
    """The threads the interpreter would join before it exits (non-daemon ones)."""
    me, main = threading.current_thread(), threading.main_thread()
    return [t for t in threading.enumerate() if not t.daemon and t is not me and t is not main]


#: Each ``concurrent.futures`` module's registry of its pools' threads, keyed
#: by thread: its exit function (run as the interpreter exits) wakes and joins
#: them. A process pool's manager thread ends its worker processes as it goes.
_EXECUTOR_REGISTRIES = (
    ("concurrent.futures.thread", "_threads_queues"),
    ("concurrent.futures.process", "_threads_wakeups"),
)


def _executor_workers() -> set[threading.Thread]:
    """The threads of ``concurrent.futures`` pools, idle or busy: thread pool
    workers, and the manager threads of process pools."""
    threads: set[threading.Thread] = set()
    for name, attribute in _EXECUTOR_REGISTRIES:
        registry = getattr(sys.modules.get(name), attribute, None)
        if registry is not None:
            threads.update(list(registry.keys()))
    return threads


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
    for task in list(registry):
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


def _daemonic_children() -> list[int]:
    """The pids of multiprocessing's daemonic children: what its exit function would end."""
    module = sys.modules.get("multiprocessing.process")
    pids = []
    for child in list(getattr(module, "_children", ())):
        with contextlib.suppress(Exception):
            if child.daemon and child.pid is not None:
                pids.append(child.pid)
    return pids


def _kill_children_at_forced_exit() -> None:
    """A forced exit: kill what the usual exit would have ended (runs inside a signal handler).

    multiprocessing's exit function terminates its daemonic children, and the
    interpreter's exit ends the process pools' workers; ``os._exit`` does
    neither; nor does it shut down the server process of a
    ``multiprocessing.Manager()``, as the manager's finalizer would. Left, they
    ran on for ever, keeping the ``listen=`` sockets they inherited by fork:
    the next start failed with "Address already in use".
    """
    for pid in [*_daemonic_children(), *_pool_workers(), *_manager_servers()]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _manager_servers() -> list[int]:
    """The pids of the server processes of multiprocessing managers not yet shut down.

    Each manager registers a finalizer (``_finalize_manager``, its server
    process the first argument) that multiprocessing's exit function runs.
    """
    registry = getattr(sys.modules.get("multiprocessing.util"), "_finalizer_registry", None)
    pids: list[int] = []
    for finalizer in list(registry.values()) if registry is not None else []:
        with contextlib.suppress(Exception):
            callback = getattr(finalizer, "_callback", None)
            if getattr(callback, "__name__", None) == "_finalize_manager":
                pid = finalizer._args[0].pid
                if isinstance(pid, int) and finalizer._args[0].exitcode is None:
                    pids.append(pid)
    return pids


def _pool_workers() -> list[int]:
    """The pids of the worker processes of ``concurrent.futures`` process pools."""
    registry = getattr(sys.modules.get("concurrent.futures.process"), "_threads_wakeups", None)
    pids: list[int] = []
    for manager in list(registry.keys()) if registry is not None else []:
        with contextlib.suppress(Exception):
            pids.extend(pid for pid in list(manager.processes) if isinstance(pid, int))
    return pids


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


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
