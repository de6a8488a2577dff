"""``main`` runs two tasks whose cleanup awaits: a flush in ``finally:``, a job handed back.

argv: options (JSON), record, SHAPE: ``taskgroup`` (an ``asyncio.TaskGroup``
in main), ``gather`` (main awaits ``asyncio.gather``, which ends at its first
child's cancellation, the other's cleanup still under way) or ``tasks`` (plain
``create_task``, main waits). The record says ``working`` once both run, then
what each cleanup finished: ``flushed`` and ``handed back``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import structlog

import aiodaemon
from tests.programs.recorder import record, run

SHAPE = sys.argv[3]
log = structlog.get_logger("program")
started = 0
ticks = 0


def _started() -> None:
    global started
    started += 1
    if started == 2:
        record("working")


async def periodic() -> None:
    """Ticks until cancelled, then flushes asynchronously."""
    global ticks
    try:
        _started()
        while True:
            await asyncio.sleep(0.05)
            ticks += 1
    finally:
        await asyncio.sleep(0.2)  # an async flush
        record("flushed")
        log.info("flushed", ticks=ticks)


async def worker() -> None:
    """A long job; cancelled, it awaits handing the job back (a broker's nack)."""
    _started()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(0.05)
        record("handed back")
        log.info("job handed back")
        raise


async def main(ctx: aiodaemon.Context) -> None:
    if SHAPE == "taskgroup":
        async with asyncio.TaskGroup() as tg:
            tg.create_task(periodic())
            tg.create_task(worker())
            await ctx.wait_stopping()
            # Where main waits is a task of its own (a server's, a client's):
            # the children's cleanup is under way before the group's exit.
            await tg.create_task(asyncio.Event().wait())
    elif SHAPE == "gather":
        await asyncio.gather(periodic(), worker())
    else:
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(periodic()),
            asyncio.create_task(worker()),
        ]
        await ctx.wait_stopping()
        await asyncio.Event().wait()
        del tasks


run(main)
