"""An echo daemon with a health endpoint, under a notify socket its manager may leave unread.

argv: the log file, the health socket's path, and "uvloop" or "asyncio" for the loop.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.start_server(echo, "echo")
    await ctx.wait_stopping()


aiodaemon.run(
    main,
    log_file=sys.argv[1],
    listen={"echo": "127.0.0.1:0"},
    health=f"unix:{sys.argv[2]}",
    shutdown_timeout=2.0,
    uvloop=sys.argv[3] == "uvloop",
)
