"""ready="manual": binds, records "bound", then reports ready (argv: pidfile, record file)."""

from __future__ import annotations

import asyncio
import sys

import aiodaemon


async def main(ctx: aiodaemon.Context) -> None:
    await asyncio.sleep(0.3)  # binding its own sockets, say
    with open(sys.argv[2], "a") as f:
        f.write("bound\n")
    ctx.notify_ready()
    await ctx.wait_stopping()


aiodaemon.run(main, pidfile=sys.argv[1], detach=True, ready="manual")
