"""A daemon that used the default executor and ended threads of its own; argv: options, a marker.

``main`` runs a call in the default executor, starts and joins three threads
(their stacks stay cached for the next threads the process creates), writes
the marker and waits for the stop. The test then lowers its ``RLIMIT_AS``
below what it uses: the threads the shutdown starts (its backstop, the one
that shuts the executor down) get a cached stack, but Python cannot allocate
what they need to begin.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading

import aiodaemon

options = json.loads(sys.argv[1])
marker = sys.argv[2]


async def main(ctx: aiodaemon.Context) -> None:
    await asyncio.get_running_loop().run_in_executor(None, os.getpid)
    helpers = [threading.Thread(target=lambda: None) for _ in range(3)]
    for helper in helpers:
        helper.start()
    for helper in helpers:
        helper.join()
    with open(marker, "w"):
        pass
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
