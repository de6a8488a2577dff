"""DESIGN.md's own server: ``asyncio.start_server`` on the ``echo`` socket, served for ever.

``main`` awaits ``server.serve_forever()`` inside ``async with server``, as asyncio's
documentation shows; the handler echoes lines until its client closes. Nothing is
tracked: a stop cancels ``main`` and the handlers at the shutdown's last step.
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


async def main(ctx: aiodaemon.Context) -> None:
    """Serve the ``echo`` socket until cancelled."""
    server = await asyncio.start_server(handle, sock=ctx.sockets["echo"])
    async with server:
        await server.serve_forever()
