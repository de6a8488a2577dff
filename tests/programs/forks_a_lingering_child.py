"""A daemon that forks a child which outlives it; argv: options JSON, the child's pid file.

The child sleeps until it is killed: what a multiprocessing worker or a plain
``os.fork`` helper that the program forgot to stop does.
"""

from __future__ import annotations

import json
import os
import sys
import time

import aiodaemon

options = json.loads(sys.argv[1])
child_file = sys.argv[2]


async def main(ctx: aiodaemon.Context) -> None:
    if os.fork() == 0:
        # The child, once fork() returned here (every at-fork hook has run), says
        # who it is, then lives on until the test kills it.
        with open(child_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(child_file + ".tmp", child_file)
        while True:
            time.sleep(3600)
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
