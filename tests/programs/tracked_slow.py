"""A plain ``asyncio.start_server`` handed to ``ctx.track``, answering ``SLOW s`` after ``s`` s.

The pattern docs/lifecycle.md shows; each request is logged (``request``) once read.
"""

from __future__ import annotations

import asyncio

import structlog

import aiodaemon

_log = structlog.get_logger()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one ``SLOW seconds`` line, sleep that long, answer ``done``, close."""
    line = await reader.readline()
    _log.info("request")
    await asyncio.sleep(float(line.split()[1]))
    writer.write(b"done\n")
    await writer.drain()
    writer.close()


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    """Start the server on ``ctx.sockets["app"]`` and track it."""
    ctx.track(await asyncio.start_server(handle, sock=ctx.sockets["app"]))


async def main(ctx: aiodaemon.Context) -> None:
    """Serve until the stop."""
    await ctx.wait_stopping()
