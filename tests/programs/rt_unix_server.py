"""Serves "hi" on the listen= socket named ctl."""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import run


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hi\n")
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    server = await asyncio.start_server(handle, sock=ctx.sockets["ctl"])
    async with server:
        await ctx.wait_stopping()


run(main)
