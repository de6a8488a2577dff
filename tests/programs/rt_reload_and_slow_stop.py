"""A recorded reload hook and a shutdown hook taking 0.5 s."""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_reload
async def reload() -> None:
    record("reload")


@aiodaemon.on_shutdown
async def slow_stop() -> None:
    record("stopping")
    await asyncio.sleep(0.5)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
