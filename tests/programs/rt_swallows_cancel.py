"""A task that swallows every cancellation."""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import record, run

tasks: list[asyncio.Task[None]] = []


async def stubborn() -> None:
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            record("swallowed")


async def main(ctx: aiodaemon.Context) -> None:
    tasks.append(asyncio.create_task(stubborn(), name="stubborn"))
    await ctx.wait_stopping()


run(main)
