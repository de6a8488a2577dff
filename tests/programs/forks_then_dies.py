"""A daemon whose startup hook forks a lingering child, then dies (SIGKILL) before ready.

argv: options JSON, the child's pid file. The child sleeps until it is killed:
what a worker pool started in a startup hook does when the daemon crashes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import aiodaemon

options = json.loads(sys.argv[1])
child_file = sys.argv[2]


@aiodaemon.on_startup
async def fork_then_die() -> None:
    said_r, said_w = os.pipe()
    if os.fork() == 0:
        os.close(said_r)
        with open(child_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(child_file + ".tmp", child_file)
        os.close(said_w)  # the daemon may die now: the test knows the child
        while True:
            time.sleep(3600)  # lingers until the test kills it
    os.close(said_w)
    os.read(said_r, 1)  # EOF once the child has written its pid file
    os.kill(os.getpid(), signal.SIGKILL)


async def main() -> None:
    raise AssertionError("never ready")


aiodaemon.run(main, **options)
