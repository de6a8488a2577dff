"""A reload hook recording its start and end with a counter.

The first reload lasts until the test creates ``go`` beside the record file
(30 s at most), so that a burst of HUPs surely comes while it runs; later ones
take 0.3 s.
"""

from __future__ import annotations

import asyncio
import os
import sys

import aiodaemon
from tests.programs.recorder import record, run

counter = 0


@aiodaemon.on_reload
async def slow_reload() -> None:
    global counter
    counter += 1
    n = counter
    record(f"start {n}")
    if n == 1:
        go = os.path.join(os.path.dirname(sys.argv[2]), "go")
        for _ in range(3000):
            if os.path.exists(go):
                break
            await asyncio.sleep(0.01)
    else:
        await asyncio.sleep(0.3)
    record(f"end {n}")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
