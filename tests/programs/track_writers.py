"""Its own server on ``listen["echo"]``, each connection's writer given to ``ctx.track()``.

A line ``hold`` keeps its connection open until the daemon closes it (the
shutdown closes what is tracked); any other line is echoed and the connection
closed by the handler.
"""

from __future__ import annotations

import asyncio

import aiodaemon


async def main(ctx: aiodaemon.Context) -> None:
    """Serve until shutdown, tracking every connection's writer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ctx.track(writer)  # "close this connection when the daemon stops"
        line = await reader.readline()
        if line == b"hold\n":
            writer.write(b"held\n")
            await reader.read()  # until the shutdown closes the connection
            return
        writer.write(line)
        writer.close()
        await writer.wait_closed()

    ctx.track(await asyncio.start_server(handle, sock=ctx.sockets["echo"]))
    await ctx.wait_stopping()
