"""A detached daemon SIGKILLed by its own startup hook (argv: the pidfile)."""

from __future__ import annotations

import os
import signal
import sys

import aiodaemon


@aiodaemon.on_startup
async def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main() -> None:
    pass


aiodaemon.run(main, pidfile=sys.argv[1], detach=True)
