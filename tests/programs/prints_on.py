"""A TARGET that prints a line every 20 ms (flushed when PRINTS_FLUSH=1) and logs each one."""

from __future__ import annotations

import asyncio
import os

import structlog

log = structlog.get_logger("prints_on")


async def main() -> None:
    """Print and log ``tick N`` until stopped."""
    flush = os.environ.get("PRINTS_FLUSH") == "1"
    n = 0
    while True:
        print("tick", n, flush=flush)
        log.info("tick", n=n)
        n += 1
        await asyncio.sleep(0.02)
