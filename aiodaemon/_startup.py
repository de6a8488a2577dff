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
from ._state import Event
from ._user_exit import EXIT_REQUESTS

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["run_main", "run_startup", "start_services"]

_log = structlog.get_logger("aiodaemon")


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
    rt.dispatch(Event.STARTED)


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
