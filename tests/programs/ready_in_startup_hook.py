"""A startup hook calls ctx.notify_ready(); a later one fails when argv[2] says "fail".

argv: pidfile, "fail" or "pass", ready mode.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon


@aiodaemon.on_startup
async def announce(ctx: aiodaemon.Context) -> None:
    """Ready as far as this hook knows."""
    ctx.notify_ready()


@aiodaemon.on_startup
async def connect() -> None:
    """A later step that may fail."""
    await asyncio.sleep(0)
    if sys.argv[2] == "fail":
        raise RuntimeError("database unreachable")


async def main(ctx: aiodaemon.Context) -> None:
    """Serve until stopped."""
    await ctx.wait_stopping()


if __name__ == "__main__":
    if sys.argv[3] == "manual":
        aiodaemon.run(main, pidfile=sys.argv[1], detach=True, ready="manual")
    aiodaemon.run(main, pidfile=sys.argv[1], detach=True, ready="startup")
