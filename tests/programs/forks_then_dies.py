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
    if os.fork() == 0:
        with open(child_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(child_file + ".tmp", child_file)
        while True:
            time.sleep(3600)
    while not os.path.exists(child_file):
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)


async def main() -> None:
    raise AssertionError("never ready")


aiodaemon.run(main, **options)
