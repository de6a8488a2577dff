"""A shutdown hook that records "slow hook" and then sleeps a minute."""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_shutdown
async def slow() -> None:
    record("slow hook")
    await asyncio.sleep(60)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
