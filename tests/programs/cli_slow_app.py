"""A startup hook that takes its time: the daemon is up, with a pid, but not ready."""

from __future__ import annotations

import asyncio

import aiodaemon


@aiodaemon.on_startup
async def warm_up() -> None:
    await asyncio.sleep(40)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
