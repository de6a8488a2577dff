"""A detached daemon that waits for its stop (argv: the pidfile)."""

from __future__ import annotations

import sys

import aiodaemon


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, pidfile=sys.argv[1], detach=True)
