"""The ``app.py`` docs/testing.md's first example launches: echo lines on ``http``, reloadable."""

from __future__ import annotations

import asyncio

import structlog

import aiodaemon

log = structlog.get_logger("app")


@aiodaemon.on_reload
async def reload() -> None:
    """A reload hook that succeeds."""
    log.info("reloaded")


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo one line."""
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    """Serve the ``http`` socket until shutdown."""
    await ctx.start_server(handle, "http")
    await ctx.wait_stopping()
