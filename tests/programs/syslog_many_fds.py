"""A foreground daemon (argv: its options as JSON) holding 1,100 descriptors, ticking.

Its startup hook opens /dev/null 1,100 times, as a busy server holds its
connections: a syslog socket connected after that is past fd 1023. Ticks
every 10 ms until stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import structlog

import aiodaemon

log = structlog.get_logger("many_fds")
_held: list[int] = []


@aiodaemon.on_startup
async def hold_descriptors() -> None:
    """Take every descriptor up to about 1,110."""
    _held.extend(os.open(os.devnull, os.O_RDONLY) for _ in range(1100))


async def main() -> None:
    """Tick until SIGTERM."""
    n = 0
    while True:
        log.info("tick", n=n)
        n += 1
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    aiodaemon.run(main, detach=False, **json.loads(sys.argv[1]))
