"""Startup: services, then startup hooks and lifespan setups in order, then ``main``.

The runtime runs these on its loop; each ends by feeding the outcome to the
state machine (``STARTED``, ``STARTUP_FAILED``, or ``SHUTDOWN`` once ``main``
is over), which decides what follows.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from typing import TYPE_CHECKING

import structlog

from ._builtin import builtin_factories
from ._hooks import Lifespan, call_async, describe, entry_name, in_own_context
from ._state import Event, State
from ._user_exit import EXIT_REQUESTS, note_shutdown_request

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["request_shutdown_by_program", "run_main", "run_startup", "start_services"]

_log = structlog.get_logger("aiodaemon")

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
            rt.outcome.fail(f"startup failed: {type(exc).__name__}: {exc}", exc)
            rt.dispatch(Event.STARTUP_FAILED)
            return False
    return True


async def run_startup(rt: Runtime) -> None:
    """Run the startup hooks and lifespan setups in order; cancelled by a stop.

    Each runs in its own copy of the contextvars Context (see ``in_own_context``);
    a lifespan's setup and teardown share one.
    """
    me = asyncio.current_task()
    for entry in rt.hooks.startup:
        if me is not None and me.cancelling():
            # A hook swallowed the stop's cancellation: start nothing more.
            return
        name = entry_name(entry)
        # Copied into the hook's own context: ctx.request_shutdown() can name it.
        token = _startup_hook.set(name)
        try:
            if isinstance(entry, Lifespan):
                context = contextvars.copy_context()
                rt.entered[entry] = await in_own_context(
                    functools.partial(entry.enter, rt.context), name, context
                )
                rt.lifespan_contexts[entry] = context
            else:
                await in_own_context(functools.partial(call_async, entry, rt.context), name)
        except EXIT_REQUESTS as exc:
            rt.note_exit_request(exc, f"startup hook {name}")
            rt.dispatch(Event.STARTUP_FAILED)
            return
        except Exception as exc:
            _log.exception("startup hook failed", hook=entry_name(entry))
            rt.outcome.fail(f"startup failed: {type(exc).__name__}: {exc}", exc)
            rt.dispatch(Event.STARTUP_FAILED)
            return
        finally:
            _startup_hook.reset(token)
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
    if rt.state not in (State.STOPPING, State.STOPPED):
        hook = _startup_hook.get()
        by = None if hook is None else f"startup hook {hook}"
        note_shutdown_request(rt.outcome, rt.ready, exit_code, by)
    rt.request_shutdown(exit_code)


async def run_main(rt: Runtime) -> None:
    """Run ``main``; when it returns or raises, the shutdown begins."""
    main = rt.main
    try:
        # In a context of its own: what main binds stays out of "main returned".
        if asyncio.iscoroutine(main):
            await in_own_context(lambda: main, "main")
        else:
            await in_own_context(functools.partial(call_async, main, rt.context), "main")
    except EXIT_REQUESTS as exc:
        rt.note_exit_request(exc, "main")
        rt.dispatch(Event.SHUTDOWN)
    except Exception as exc:
        _log.exception("main failed")
        rt.outcome.fail(f"main failed: {type(exc).__name__}: {exc}", exc)
        rt.dispatch(Event.SHUTDOWN)
    else:
        _log.info("main returned")
        if not rt.ready:
            rt.outcome.fail("main returned before reporting ready")
        rt.dispatch(Event.SHUTDOWN)
