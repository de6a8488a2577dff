"""A daemon whose forked child logs a tick every 20 ms for as long as the daemon runs.

argv[1]: the log file. The child ends (``os._exit``) once its parent is gone.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import structlog

import aiodaemon

log = structlog.get_logger()


async def main() -> None:
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        n = 0
        deadline = time.monotonic() + 60
        while os.getppid() == parent and time.monotonic() < deadline:
            log.info("child tick", n=n)
            n += 1
            time.sleep(0.02)
        os._exit(0)
    log.info("forked", child=child)
    await asyncio.Event().wait()


aiodaemon.run(main, log_file=sys.argv[1], detach=False)
