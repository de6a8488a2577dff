"""A startup hook that sends itself SIGTERM and keeps starting (argv: the pidfile)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiodaemon


@aiodaemon.on_startup
async def slow() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(30)


async def main() -> None:
    pass


aiodaemon.run(main, pidfile=sys.argv[1], detach=True)
