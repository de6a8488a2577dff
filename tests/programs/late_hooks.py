"""main registers hooks while the daemon runs.

argv: options (JSON), record, case: ``startup``, ``lifespan`` or ``signal``
(main registers one of those, which the run has read already), or ``later``
(main registers a reload and a shutdown hook, asks for a reload and returns).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator

import aiodaemon
from tests.programs.recorder import record, run

CASE = sys.argv[3]


async def late_startup() -> None:
    record("late startup hook")


async def late_span() -> AsyncIterator[None]:
    record("late lifespan")
    yield


async def late_signal() -> None:
    record("late signal handler")


async def late_reload() -> None:
    record("late reload hook")


async def late_shutdown() -> None:
    record("late shutdown hook")


async def main(ctx: aiodaemon.Context) -> None:
    if CASE == "startup":
        aiodaemon.on_startup(late_startup)
    if CASE == "lifespan":
        aiodaemon.lifespan(late_span)
    if CASE == "signal":
        aiodaemon.on_signal(signal.SIGWINCH)(late_signal)
    if CASE == "later":
        aiodaemon.on_reload(late_reload)
        aiodaemon.on_shutdown(late_shutdown)
        ctx.request_reload()
        await ctx.wait_stopping()


run(main)
