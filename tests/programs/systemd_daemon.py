"""A foreground daemon with a short reload hook (argv: the log file)."""

from __future__ import annotations

import asyncio
import sys

import aiodaemon


@aiodaemon.on_reload
async def reload() -> None:
    await asyncio.sleep(0.05)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, log_file=sys.argv[1])
