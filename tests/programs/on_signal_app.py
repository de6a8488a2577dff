"""on_signal handlers observed through the record file.

SIGWINCH (module-level decorator, takes the Context): records ``start N``,
waits until the test creates ``gate`` (consuming it), records ``end N``; a
cancelled run records ``cancelled N``. SIGALRM: fails on its first run,
records ``alarm ok`` on later ones. SIGRTMIN+1 on a ``Daemon`` method would
need a second daemon, so it is the plain form: records ``rt``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiodaemon
from tests.programs.recorder import record, run

GATE = Path(sys.argv[2]).with_name("gate")
runs = 0
alarms = 0


@aiodaemon.on_signal(signal.SIGWINCH)
async def dump(ctx: aiodaemon.Context) -> None:
    global runs
    runs += 1
    number = runs
    record(f"start {number} {ctx.state.name}")
    try:
        # The gate is a file the test creates from outside: polled, no event to wait on.
        while not GATE.exists():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        GATE.unlink()
    except asyncio.CancelledError:
        record(f"cancelled {number}")
        raise
    record(f"end {number}")


@aiodaemon.on_signal(signal.SIGALRM)
async def alarm() -> None:
    global alarms
    alarms += 1
    if alarms == 1:
        raise RuntimeError("first alarm fails")
    record("alarm ok")


@aiodaemon.on_signal(signal.SIGRTMIN + 1)
async def realtime() -> None:
    record("rt")


@aiodaemon.on_shutdown
async def bye() -> None:
    record("shutdown hook")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
