"""``main`` awaits ``serve_forever()`` of a server the framework closes at a stop.

``main`` serves ``echo`` through ``ctx.start_server``; ``tracked`` through a plain
``asyncio.start_server`` handed to ``ctx.track``. Both await
``server.serve_forever()`` inside ``async with server``, as asyncio's documentation
shows. The shutdown hook awaits a moment (a database closing, say).
"""

from __future__ import annotations

import asyncio

import aiodaemon


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo lines until the client closes."""
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()


@aiodaemon.on_shutdown
async def close_database() -> None:
    """A shutdown hook that awaits something."""
    await asyncio.sleep(0.05)


async def main(ctx: aiodaemon.Context) -> None:
    """Serve ``echo`` through ``ctx.start_server`` for ever."""
    server = await ctx.start_server(handle, "echo")
    async with server:
        await server.serve_forever()


async def tracked(ctx: aiodaemon.Context) -> None:
    """Serve ``echo`` through a tracked ``asyncio.start_server`` for ever."""
    server = ctx.track(await asyncio.start_server(handle, sock=ctx.sockets["echo"]))
    async with server:
        await server.serve_forever()
