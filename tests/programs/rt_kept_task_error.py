"""A failed task the program keeps (in a list) and never awaits."""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import record, run

workers: list[asyncio.Task[None]] = []


async def work() -> None:
    raise ValueError("the worker's error")


async def main(ctx: aiodaemon.Context) -> None:
    workers.append(asyncio.create_task(work(), name="kept-worker"))
    await asyncio.wait(workers)
    record("failed")
    await ctx.wait_stopping()


run(main)
