"""A daemon whose shutdown holds its loop (sync code) at one step until a release file appears.

argv: options JSON, the directory of the steering files, the step ("hook":
a shutdown hook; "cancel": a task cancelled at the shutdown's cancel step).
``<dir>/stalled`` appears when the loop is held; ``<dir>/release`` lets it go.
What the control socket's clients, queued meanwhile, are told is the point.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiodaemon

options = json.loads(sys.argv[1])
directory, step = sys.argv[2], sys.argv[3]


def stall() -> None:
    """Hold the loop (no await) until the test releases it."""
    with open(os.path.join(directory, "stalled"), "w"):
        pass
    release = os.path.join(directory, "release")
    deadline = time.monotonic() + 30
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)


@aiodaemon.on_shutdown
async def held() -> None:
    if step == "hook":
        stall()


async def lingering() -> None:
    try:
        await asyncio.Event().wait()
    finally:
        if step == "cancel":
            stall()


async def main(ctx: aiodaemon.Context) -> None:
    task = asyncio.get_running_loop().create_task(lingering())
    await ctx.wait_stopping()
    del task


aiodaemon.run(main, **options)
