"""A daemon whose shutdown hook takes a while, for the tests of ``aiodaemon stop``.

The hook logs "shutdown hook started", sleeps ``$SLOW_SHUTDOWN_SECONDS`` (default
2), then logs "shutdown hook finished": a forced exit shows as the second record
missing from the log.
"""

from __future__ import annotations

import asyncio
import os

import structlog

import aiodaemon

_log = structlog.get_logger("slow_shutdown")


@aiodaemon.on_shutdown
async def close_slowly() -> None:
    seconds = float(os.environ.get("SLOW_SHUTDOWN_SECONDS", "2"))
    _log.info("shutdown hook started", seconds=seconds)
    await asyncio.sleep(seconds)
    _log.info("shutdown hook finished")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
