"""A shutdown hook that records "holding" and then sleeps 4 s in C without releasing the GIL."""

from __future__ import annotations

import ctypes

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_shutdown
async def hold() -> None:
    record("holding")
    # PyDLL keeps the GIL through the call: no other thread of ours runs meanwhile.
    ctypes.PyDLL(None).sleep(4)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
