"""A reload hook taking 0.3 s, recording its start and end with a counter."""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import record, run

counter = 0


@aiodaemon.on_reload
async def slow_reload() -> None:
    global counter
    counter += 1
    n = counter
    record(f"start {n}")
    await asyncio.sleep(0.3)
    record(f"end {n}")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
