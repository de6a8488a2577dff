"""A daemon whose launcher is killed in the instant before the daemon reports its pid.

argv: options JSON, a marker path, and "hang" for a startup hook that never
returns ("block": one that blocks the event loop for a minute). Right after the
second fork the daemon writes the marker and waits a second: the test kills the
launcher meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiodaemon

options = json.loads(sys.argv[1])
marker = sys.argv[2]
forks = 0


def after_fork() -> None:
    global forks
    forks += 1
    if forks == 2:  # the daemon: the launcher forked once, the session leader once more
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(1.0)  # the window the test widens: the launcher dies in it


os.register_at_fork(after_in_child=after_fork)


@aiodaemon.on_startup
async def maybe_hang() -> None:
    if sys.argv[3:] == ["hang"]:
        await asyncio.Event().wait()
    if sys.argv[3:] == ["block"]:
        time.sleep(60)  # sync code holding the loop: only a thread can end the start


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
