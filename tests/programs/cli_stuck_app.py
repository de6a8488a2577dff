"""A shutdown hook that never ends: only SIGKILL stops this one in time."""

from __future__ import annotations

import asyncio

import aiodaemon


@aiodaemon.on_shutdown
async def never_done() -> None:
    await asyncio.Event().wait()


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
