"""Calls ``loop.stop()`` on the daemon's event loop where the test says.

argv: options (JSON), record, WHERE: main (then waits for the stop), startup
or shutdown (a shutdown hook; main returns at once). Every hook records that
it ran.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon
from tests.programs.recorder import record, run

WHERE = sys.argv[3]


@aiodaemon.on_startup
async def startup() -> None:
    record("startup hook")
    if WHERE == "startup":
        asyncio.get_running_loop().stop()


@aiodaemon.on_shutdown
async def shutdown() -> None:
    record("shutdown hook")
    if WHERE == "shutdown":
        asyncio.get_running_loop().stop()


async def main(ctx: aiodaemon.Context) -> None:
    record("main")
    if WHERE == "main":
        asyncio.get_running_loop().stop()
        await ctx.wait_stopping()


run(main)
