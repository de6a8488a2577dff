"""A running daemon whose ``main`` calls aiodaemon.run() again from a thread; argv: pidfile, log.

The log and the pidfile tell how it ended.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon


async def other() -> None:
    pass


async def main() -> None:
    await asyncio.to_thread(aiodaemon.run, other)


aiodaemon.run(main, detach=False, pidfile=sys.argv[1], log_file=sys.argv[2])
