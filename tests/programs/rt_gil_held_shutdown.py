"""A shutdown hook that records "holding", sleeps 4 s in C holding the GIL, then a minute more.

After the GIL is free, the hook still does not end: the shutdown's budget is
spent whichever thread (the loop's, the backstop's) gets to act first.
"""

from __future__ import annotations

import asyncio
import ctypes

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_shutdown
async def hold() -> None:
    record("holding")
    # PyDLL keeps the GIL through the call: no other thread of ours runs meanwhile.
    ctypes.PyDLL(None).sleep(4)
    await asyncio.sleep(60)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
