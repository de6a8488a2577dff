"""A daemon whose shutdown hook waits for the test: records "hook started", then "hook done".

The hook holds the shutdown until a file named ``release`` appears beside the
record file (at most 20 s), so a test can signal the daemon while it stops.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_shutdown
async def slow() -> None:
    """Hold the shutdown until the test releases it."""
    record("hook started")
    release = Path(sys.argv[2]).with_name("release")
    for _ in range(2000):
        if release.exists():
            break
        await asyncio.sleep(0.01)
    record("hook done")


async def main(ctx: aiodaemon.Context) -> None:
    """Wait for the stop."""
    await ctx.wait_stopping()


run(main)
