"""A foreground daemon ticking every 10 ms (argv: its options as JSON) until stopped."""

from __future__ import annotations

import asyncio
import json
import sys

import structlog

import aiodaemon

log = structlog.get_logger("ticker")


async def main() -> None:
    """Tick until SIGTERM."""
    n = 0
    while True:
        log.info("tick", n=n)
        n += 1
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    aiodaemon.run(main, detach=False, **json.loads(sys.argv[1]))
