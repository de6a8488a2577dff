"""A shutdown hook that never ends."""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import run


@aiodaemon.on_shutdown
async def hang() -> None:
    await asyncio.Event().wait()


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
