"""Startup: services, then startup hooks and lifespan setups in order, then ``main``.

The runtime runs these on its loop; each ends by feeding the outcome to the
state machine (``STARTED``, ``STARTUP_FAILED``, or ``SHUTDOWN`` once ``main``
is over), which decides what follows. :class:`StartDeadline` enforces
``start_timeout`` where no launcher does.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import reprlib
import select
import sys
import threading
import time
from typing import TYPE_CHECKING

import structlog

from .._prefork._messages import seconds_shown
from ..exceptions import ExitCode
from ._builtin import builtin_factories
from ._forced import FROZEN_AFTER, BackstopClock, start_backstop
from ._hooks import (
    Lifespan,
    NotBegun,
    call_async,
    describe,
    entry_name,
    in_own_context,
    warn_returned,
)
from ._loop import await_chain, thread_stack
from ._outcome import error_text, exit_status, raised
from ._state import Event, State
from ._user_exit import EXIT_REQUESTS, note_shutdown_request, show_request

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = [
    "StartDeadline",
    "request_shutdown_by_program",
    "run_main",
    "run_startup",
    "start_services",
]

_log = structlog.get_logger("aiodaemon")

#: How often a successor's start backstop looks whether its old daemon is gone.
_PREDECESSOR_POLL_MS = 500

#: Loop turns a stop that came while the last startup hook blocked the loop gets
#: before "ready": a signal needs two (wake-up fd, handler), ``aiodaemon stop``
#: five (accept, connection, task, read, answer) on asyncio, fewer on uvloop.
#: Each turn costs ~1-2 µs when nothing is pending.
_SETTLE_TURNS = 10

#: The startup hook (or lifespan setup) whose task, or a task it started, runs.
_startup_hook: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "aiodaemon_startup_hook", default=None
)


async def start_services(rt: Runtime) -> bool:
    """Build and start every service (built-in first); False when one failed to start."""
    for factory in [*builtin_factories(), *rt.parts.factories]:
        try:
            service = factory(rt)
            if service is None:
                continue
            rt.services.append(service)
            await service.start()
        except Exception as exc:
            _log.exception("service failed to start", factory=describe(factory))
            rt.outcome.fail(f"startup failed: {error_text(exc)}", exc)
            rt.dispatch(Event.STARTUP_FAILED)
            return False
    return True


async def run_startup(rt: Runtime) -> None:
    """Run the startup hooks and lifespan setups in order; cancelled by a stop.

    Each runs in its own copy of the contextvars Context (see ``in_own_context``);
    a lifespan's setup and teardown share one.
    """
    me = asyncio.current_task()

    def stopping() -> bool:
        return rt.state is not State.STARTING

    for entry in rt.hooks.startup:
        if stopping() or (me is not None and me.cancelling()):
            # A stop already read (its shutdown's cancel comes later), or a
            # hook that swallowed the stop's cancellation: start nothing more.
            return
        name = entry_name(entry)
        # Copied into the hook's own context: ctx.request_shutdown() can name it.
        token = _startup_hook.set(name)
        began = time.monotonic()
        rt.hook_running = ("startup", name, began)
        try:
            if isinstance(entry, Lifespan):
                context = contextvars.copy_context()
                rt.entered[entry] = await in_own_context(
                    functools.partial(entry.enter, rt.context),
                    name,
                    context,
                    begin_unless=stopping,
                )
                rt.lifespan_contexts[entry] = context
            else:
                result = await in_own_context(
                    functools.partial(call_async, entry, rt.context), name, begin_unless=stopping
                )
                warn_returned("startup", name, result)
        except NotBegun:
            # A stop read as its task began (a SIGTERM pending since before
            # the loop): the shutdown under way says how the start ended.
            return
        except EXIT_REQUESTS as exc:
            rt.note_exit_request(exc, f"startup hook {name}")
            rt.dispatch(Event.STARTUP_FAILED)
            return
        except Exception as exc:
            # How long it ran tells a connect that timed out from one refused at once.
            seconds = round(time.monotonic() - began, 3)
            _log.error(
                "startup hook failed", hook=entry_name(entry), seconds=seconds, exc_info=raised(exc)
            )
            # Named: which of several hooks failed is the first thing to know.
            what = "lifespan" if isinstance(entry, Lifespan) else "startup hook"
            rt.outcome.fail(f"{what} {name} failed: {error_text(exc)}", raised(exc))
            rt.dispatch(Event.STARTUP_FAILED)
            return
        finally:
            _startup_hook.reset(token)
            rt.hook_running = None
    if await _stopped_while_starting(rt):
        return
    rt.dispatch(Event.STARTED)


async def _stopped_while_starting(rt: Runtime) -> bool:
    """Whether a stop that was pending when the last hook returned has begun the shutdown.

    A hook that blocks the loop (synchronous code) leaves a SIGTERM or an
    ``aiodaemon stop`` waiting in the kernel; dispatching STARTED in the same
    step would report ready (and run ``main``) before the stop is even read.
    """
    for _ in range(_SETTLE_TURNS):
        await asyncio.sleep(0)
        if rt.state is not State.STARTING:
            return True
    return False


def request_shutdown_by_program(rt: Runtime, exit_code: int = 0) -> None:
    """``ctx.request_shutdown(exit_code)``: logged with the hook that asked, if any.

    Before ready it ends the start as ``sys.exit(exit_code)`` would, with a
    reason for the launcher (see :func:`._user_exit.note_shutdown_request`).
    """
    code = exit_status(exit_code)
    if rt.state in (State.STOPPING, State.STOPPED):
        # No start left to end, but the status it asks for still counts (as a
        # sys.exit(n) then does): the log says where the exit status came from.
        _log.info("shutdown requested by the program", status=code)
    else:
        # A task a startup hook started keeps the name after ready: not the hook then.
        hook = _startup_hook.get() if rt.state is State.STARTING else None
        by = None if hook is None else f"startup hook {hook}"
        note_shutdown_request(rt.outcome, rt.ready, code, by)
        rt.stopping_because(f"ctx.request_shutdown({code or ''})")
    rt.request_shutdown(code)


async def run_main(rt: Runtime) -> None:
    """Run ``main``; when it returns or raises, the shutdown begins."""
    main = rt.main
    try:
        # In a context of its own: what main binds stays out of "main returned".
        if asyncio.iscoroutine(main):
            result = await in_own_context(lambda: main, "main")
        else:
            result = await in_own_context(functools.partial(call_async, main, rt.context), "main")
    except EXIT_REQUESTS as exc:
        rt.note_exit_request(exc, "main")
        rt.stopping_because(f"{show_request(exc)} in main")
        rt.dispatch(Event.SHUTDOWN)
    except Exception as exc:
        if isinstance(raised(exc), asyncio.CancelledError) and not rt.serving.accepting:
            # asyncio's Server.close() cancels the serve_forever() main awaits:
            # the daemon closed that server (the stop's step 3, an upgrade's
            # hand-over), so this is the daemon's cancellation, not main's failure.
            rt.dispatch(Event.SHUTDOWN)
            return
        _log.error("main failed", exc_info=raised(exc))
        rt.outcome.fail(f"main failed: {error_text(exc)}", raised(exc))
        rt.dispatch(Event.SHUTDOWN)
    else:
        if result is None:
            _log.info("main returned")
        else:
            # `return 1` as in `sys.exit(main())`: the contract's status is 0.
            _log.warning(
                "main returned",
                value=reprlib.repr(result),
                ignored="sys.exit(n) or ctx.request_shutdown(n) sets the exit status",
            )
        if not rt.ready:
            rt.outcome.fail("main returned before reporting ready")
        rt.stopping_because("main returned")
        rt.dispatch(Event.SHUTDOWN)


class StartDeadline:
    """``start_timeout`` where no launcher enforces it: on the loop, and on a thread.

    Detached, the launcher enforces it (it outlives a hung loop), and a loop
    timer in the daemon too, for a launcher that was killed meanwhile and for
    a ready come too late (both count from the fork). In the
    foreground, and for an upgrade's successor whose old daemon vanished, the
    daemon does: a loop timer begins the shutdown at ``start_timeout`` ("not
    ready after S s"), and, as the shutdown has, a backstop thread ends the
    process at ``start_timeout + shutdown_timeout`` if the loop never got
    there (sync code in a startup hook blocks it): the forced exit, status 1;
    it logs why (``loop: blocked``) a moment after ``start_timeout`` already.
    Once the shutdown has begun, its own deadline and backstop take over.
    A successor's backstop waits while its old daemon lives: that one
    enforces the upgrade's timeout (it kills us).
    """

    __slots__ = ("_loop_thread", "_over", "_reported", "_rt", "_since")

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        #: the loop's time when the run began: the successor's count starts there.
        self._since = asyncio.get_running_loop().time()
        #: the loop's thread: where a startup hook blocking it is found.
        self._loop_thread = threading.get_ident()
        #: set once ready or stopping: the backstop has nothing left to do.
        self._over = threading.Event()
        #: the timeout was logged by a thread while the loop was blocked.
        self._reported = False

    def start(self) -> None:
        """Arm what applies to this daemon (see the class docstring)."""
        parts = self._rt.parts
        handoff = getattr(parts.pipe, "handoff", None)
        if (takeover := getattr(parts.pipe, "on_takeover", None)) is not None:
            # An upgrade's successor: its old daemon enforces the timeout, but
            # one that vanished leaves us to do it (see _takeover).
            takeover.append(self._arm_alone)
        else:
            # Detached, the launcher enforces it as well: a launcher killed
            # meanwhile (its Ctrl-C says the daemon goes on starting) leaves it to us.
            self._arm()
        # Detached, the launcher outlives a blocked loop, unless it is gone already.
        alone = getattr(parts.pipe, "fd", 0) is None
        if parts.foreground or handoff is not None or alone:
            pidfd = None if handoff is None else handoff.parent_pidfd
            # Our own copy: the loop closes the handoff's once the old daemon is gone.
            watch = None if pidfd is None else os.dup(pidfd)
            self._rt.add_state_listener(self._on_state)
            backstop = threading.Thread(
                target=self._backstop, args=(watch,), name="aiodaemon-start-backstop", daemon=True
            )
            if start_backstop(backstop, "start_timeout while the loop is blocked"):
                self._rt.backstops.append(backstop)
            elif watch is not None:
                os.close(watch)
        elif (deadline := parts.pipe.deadline) is not None and self._user_code_before_ready():
            self._rt.add_state_listener(self._on_state)
            witness = threading.Thread(
                target=self._witness, args=(deadline,), name="aiodaemon-start-witness", daemon=True
            )
            if start_backstop(witness, "the log's reason for a start timed out while blocked"):
                self._rt.backstops.append(witness)

    def _user_code_before_ready(self) -> bool:
        """Whether the program's code runs before ready: startup hooks, or ``main`` (manual).

        Only that code can block the loop past the deadline; a start without
        it (the bare daemon) pays for no witness thread.
        """
        rt = self._rt
        return bool(rt.hooks.startup) or rt.options.ready == "manual"

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = self._rt.parts.pipe.deadline
        if deadline is not None:
            # Detached: the launcher's deadline, taken before the fork, so that
            # both give the same verdict (see ReadinessPipe.ready).
            left = deadline - time.monotonic()
        else:
            left = self._rt.options.start_timeout - (loop.time() - self._since)
        loop.call_later(max(0.0, left), self._timed_out)

    async def _arm_alone(self) -> None:
        # Counted from the run's start, as the old daemon counted from the spawn.
        self._arm()

    @property
    def _message(self) -> str:
        return f"not ready after {seconds_shown(self._rt.options.start_timeout)} s"

    def _done(self) -> bool:
        rt = self._rt
        return rt.ready or rt.state in (State.STOPPING, State.STOPPED)

    def _on_state(self, old: State, new: State) -> None:
        if self._done():
            self._over.set()

    def _timed_out(self) -> None:
        rt = self._rt
        if self._done():
            return
        where: dict[str, object] = {}
        if (hook := rt.startup_hook_running) is not None:
            # The hook runs in a task named after it (see in_own_context).
            task = next((t for t in asyncio.all_tasks() if t.get_name() == hook), None)
            where = {"hook": hook, "stack": None if task is None else await_chain(task)}
        if not self._reported:  # said already by the witness while the loop was blocked
            _log.error(self._message, start_timeout=rt.options.start_timeout, **where)
        rt.outcome.fail(self._message)
        rt.dispatch(Event.SHUTDOWN)

    def _backstop(self, predecessor: int | None) -> None:
        # On its own thread: the loop may be blocked for good.
        rt = self._rt
        budget = rt.options.start_timeout + rt.options.shutdown_timeout
        clock = BackstopClock(budget)
        try:
            if predecessor is None:
                # Why, said a moment after the deadline, as a detached start's
                # witness says it: the forced exit is shutdown_timeout away, and
                # the log (read by a person, or by the testing kit to give up
                # at once) said nothing of the blocked start until then.
                self._witness(clock.started + rt.options.start_timeout)
            if self._over.wait(max(0.0, clock.due - time.monotonic())):
                return
            # Before waiting on the old daemon, which may end long after.
            stopped = clock.stopped()
            if predecessor is not None:
                poller = select.poll()
                poller.register(predecessor, select.POLLIN)
                while not poller.poll(_PREDECESSOR_POLL_MS):
                    if self._over.is_set():
                        return
        finally:
            if predecessor is not None:
                os.close(predecessor)
        if self._done():
            return
        if not self._reported:
            self._report_blocked(stopped)
        rt.outcome.fail(self._message)
        cause = stopped or "event loop blocked"
        rt.shutdown.exit_now(ExitCode.FAILURE, f"{self._message}, {cause}")

    def _witness(self, deadline: float) -> None:
        # On its own thread (detached; or in the foreground, the backstop's
        # first step): the launcher stops a daemon not ready by its deadline,
        # and SIGKILLs one whose blocked loop cannot stop; the loop's own record
        # of why never came, and the log ended at "starting". The loop's timer
        # reports at the deadline; one that has not, a moment later, is blocked
        # (and the launcher's SIGKILL is still a second away).
        grace = min(FROZEN_AFTER, self._rt.options.shutdown_timeout / 2)
        clock = BackstopClock(max(0.0, deadline + grace - time.monotonic()))
        if self._over.wait(clock.due - clock.started) or self._done():
            return
        self._report_blocked(clock.stopped())

    def _report_blocked(self, stopped: str | None) -> None:
        """From a backstop thread: the start timed out while the loop could not say so."""
        rt = self._rt
        self._reported = True
        # The loop thread's running frame is the call that blocks it: in the
        # hook's task, or in main's (ready="manual" runs main before ready).
        frame = sys._current_frames().get(self._loop_thread)
        where: dict[str, object] = {"stack": thread_stack(frame) if frame else None}
        if (hook := rt.startup_hook_running) is not None:
            where["hook"] = hook
        # The process stopped (SIGSTOP, a freezer) is not a loop blocked by code.
        why = {"loop": "blocked"} if stopped is None else {"process": "stopped"}
        _log.error(self._message, start_timeout=rt.options.start_timeout, **why, **where)
