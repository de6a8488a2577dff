"""An echo server on the ``listen=`` socket "echo", with no hooks at all (copied as app.py)."""

from __future__ import annotations

import asyncio

import aiodaemon


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    if "echo" in ctx.sockets:
        server = await ctx.start_server(echo, "echo")
        async with server:
            await ctx.wait_stopping()
    else:
        await ctx.wait_stopping()
