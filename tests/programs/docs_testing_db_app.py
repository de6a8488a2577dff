"""The ``app.py`` of docs/testing.md's after-the-block example: a shutdown hook that logs."""

from __future__ import annotations

import structlog

import aiodaemon

log = structlog.get_logger("app")


@aiodaemon.on_shutdown
async def close_database() -> None:
    """The record the page's test finds in ``records()`` after the block."""
    log.info("database closed")


async def main(ctx: aiodaemon.Context) -> None:
    """Run until shutdown."""
    await ctx.wait_stopping()
