"""The end of the process: within the shutdown's budget, whatever the program left.

After the shutdown sequence (:mod:`._shutdown`, steps 1-7), the process's own
end stays within the same budget (plus a second's grace for the last log
drain and ``atexit`` functions):

7b. ``wait_children`` (:mod:`._children`) — before the ``exit`` record, the
   program's multiprocessing children the interpreter's exit would join, and
   the calls still running in its process pools, get what is left of the
   budget; the ones still running then are logged and killed (status 4);
8. ``wait_threads`` — after the ``exit`` record, the program's non-daemon
   threads (a ``threading.Thread``), which the interpreter would join for
   ever, get what is left of the budget; the ones still running then are
   logged with their stack. Executor workers are left to the interpreter's
   exit, which ends idle ones at once (a busy thread pool meets the backstop): ending
   them here would shut every executor of a program that goes on;
9. ``end_process`` — once everything acquired is released: if threads were
   left, the ``atexit`` functions run and the process leaves at once with
   status 4; else the interpreter exits as usual, and a backstop thread
   ends it with status 4 if its exit (an ``atexit`` function, a thread
   started meanwhile) outlasts the budget.

A forced exit (:mod:`._forced`) kills the children the usual exit would have
waited for or ended (:func:`._children.kill_children_at_forced_exit`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable

import structlog

from .._prefork._messages import flush_stdio, silence
from ..exceptions import ExitCode
from ._children import manager_servers, mp_children, pool_workers
from ._exit_notice import say_forced_exit, say_nowait
from ._forced import start_backstop
from ._loop import thread_stack
from ._own_children import claim_own, kill_own

__all__ = [
    "EXIT_GRACE",
    "disarm_at_exit",
    "end_process",
    "executor_workers",
    "wait_program_threads",
]

_log = structlog.get_logger("aiodaemon")

#: Seconds past the budget's end for the process's last steps (log drain, atexit).
EXIT_GRACE = 1.0


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


def wait_program_threads(
    deadline: float, timeout: float, release_claims: Callable[[], None]
) -> None:
    """Step 8: give the program's own threads what is left of the budget.

    The interpreter joins every non-daemon thread before it exits, for as
    long as they run. They are joined here until the budget's end; the
    ones still running are logged, and :func:`end_process` does not wait
    for them. Executor threads are not waited for: the interpreter's exit
    ends idle ones (under the backstop), a process pool's manager thread
    with the pool's worker processes (joined here, never told to stop, it
    kept the daemon for the whole budget and its workers outlived it), and
    a program that goes on after ``run()`` keeps its executors.

    Args:
        deadline: the ``time.monotonic()`` end of the budget.
        timeout: the budget (``shutdown_timeout``), as the messages name it.
        release_claims: releases what the daemon claimed, before the threads
            are joined (only if there are any).
    """
    _END.deadline, _END.timeout = deadline, timeout
    workers = executor_workers()
    threads = [t for t in _program_threads() if t not in workers]
    if not threads:
        return
    # The run is over; only the program's threads keep the process. What
    # the daemon claimed goes now, not when they end: a pidfile held that
    # long makes `start` say "already running" and start nothing, and a
    # listener left open queues clients nobody will answer.
    release_claims()
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
    _flush_or_drop_stdio()


def _flush_or_drop_stdio() -> None:
    """Flush ``sys.stdout`` and ``sys.stderr`` now; what cannot be written is dropped.

    The interpreter flushes them last, and a flush that fails there (a print
    left in the buffer, its pipe's reader or its terminal gone) turns the
    exit status into 120, whatever the ``exit`` record said. The output is
    lost either way; a failed stream's fd is pointed at /dev/null, so the
    interpreter's own flush takes what is left without error.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except OSError:
            silence(stream)
            with contextlib.suppress(Exception):
                stream.flush()
        except Exception:  # closed by the program, say: the interpreter skips it too
            pass


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
        # A process pool's workers, whose manager the exit was joining: left,
        # they would wait for work for ever.
        workers = pool_workers()
        # A manager's server, which its finalizer (run by the same exit
        # function, unless an atexit function stuck before it) would have shut down.
        servers = manager_servers()
        # multiprocessing's exit function terminates its daemonic children and
        # joins the others; cut short, it would leave them running for ever
        # (one that ignores SIGTERM, one the program never told to stop).
        children = mp_children()
        # Only those still ours: a pid in those records may be another's now.
        owned = claim_own([*workers, *servers, *children])
        ours = {child.pid for child in owned}
        workers = [pid for pid in workers if pid in ours]
        servers = [pid for pid in servers if pid in ours and pid not in workers]
        children = [pid for pid in children if pid in ours and pid not in {*workers, *servers}]
        if children:
            what += f"; multiprocessing children killed: {', '.join(map(str, children))}"
        if workers:
            what += f"; process pool workers killed: {', '.join(map(str, workers))}"
        if servers:
            what += f"; manager servers killed: {', '.join(map(str, servers))}"
        # Said before the kills: a killed child ends the main thread's join.
        budget = f"the process's exit took longer than the {_END.timeout}s shutdown budget"
        say_forced_exit(status, f"{budget}; {what}")
        kill_own(owned)
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


def executor_workers() -> set[threading.Thread]:
    """The threads of ``concurrent.futures`` pools, idle or busy: thread pool
    workers, and the manager threads of process pools."""
    threads: set[threading.Thread] = set()
    for name, attribute in _EXECUTOR_REGISTRIES:
        registry = getattr(sys.modules.get(name), attribute, None)
        if registry is not None:
            threads.update(list(registry.keys()))
    return threads
