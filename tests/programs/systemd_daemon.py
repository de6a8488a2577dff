"""A foreground daemon with a short reload hook; argv: the log file, a file that fails reloads."""

from __future__ import annotations

import asyncio
import os
import sys

import aiodaemon


@aiodaemon.on_reload
async def reload() -> None:
    await asyncio.sleep(0.05)
    if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
        raise RuntimeError("bad config")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, log_file=sys.argv[1])
