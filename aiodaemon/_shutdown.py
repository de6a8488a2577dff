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
6. ``cancel_rest`` — every remaining task is cancelled and awaited;
7. ``close`` — every service's ``close()``, then the service tasks end.

Steps 3-7 share one budget, ``shutdown_timeout``, counted from the end of
step 2; past it the stuck tasks are logged with their await chain and the
daemon exits with status 4. A backstop thread does the same if sync code
blocks the loop. A second stop signal exits at once (:mod:`._forced`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from ._hooks import HookError, Lifespan, call_async, entry_name, in_own_context
from ._loop import await_chain
from ._state import Event
from ._user_exit import EXIT_REQUESTS
from .exceptions import ExitCode

if TYPE_CHECKING:
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
        #: the ``time.monotonic()`` end of the budget, once step 2 is over.
        self.deadline: float | None = None
        # The loop thread and the backstop thread may both time out; one exits.
        self._exit_claim = threading.Lock()

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
        backstop = threading.Timer(drain + timeout + 1.0, self._backstop)
        backstop.daemon = True
        backstop.start()
        if drain > 0:
            await asyncio.sleep(drain)
        self.deadline = time.monotonic() + timeout
        sequence = asyncio.create_task(self._steps(), name=_STOP_TASK)
        done, _ = await asyncio.wait([sequence], timeout=timeout)
        if not done:
            self._report_stuck()
            self.exit_now(ExitCode.SHUTDOWN_TIMEOUT, f"shutdown took longer than {timeout}s")
        backstop.cancel()
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
        if startup is not None:
            await self._run_hooks()
        await self._cancel_rest()
        for service in rt.services:
            await _guard_async(service, "close", service.close)
        await cancel_all(rt.service_tasks)
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()

    async def _run_hooks(self) -> None:
        rt = self.runtime
        for entry in reversed(rt.hooks.shutdown):
            name = entry_name(entry)
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
            except Exception:
                _log.exception("shutdown hook failed", hook=entry_name(entry))

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
        pending = [
            t
            for t in asyncio.all_tasks()
            if t not in keep and t.get_name() not in (LIFECYCLE_TASK, _STOP_TASK)
        ]
        await cancel_all(pending)
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
        self.exit_now(
            ExitCode.SHUTDOWN_TIMEOUT,
            f"shutdown took longer than {self.runtime.options.shutdown_timeout}s"
            " (event loop blocked)",
        )

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
        rt.release_launcher()
        _log.info("exit", status=int(rt.outcome.code), reason=reason)
        rt.parts.logs.close(min(1.0, rt.options.shutdown_timeout))
        if rt.parts.listeners is not None:
            # Not a signal handler: the unix socket files can go too.
            rt.parts.listeners.close()
        if rt.parts.control is not None:
            rt.parts.control.close()
        rt.forced.exit(rt.outcome.code, reason)


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


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
