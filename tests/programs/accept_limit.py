"""A daemon that answers ``ok`` on each connection to "http" and holds it until the client closes.

Options as JSON in argv[1].
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiodaemon


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"ok\n")
    await writer.drain()
    await reader.read()
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.start_server(answer, "http")
    await ctx.wait_stopping()


aiodaemon.run(main, **json.loads(sys.argv[1]))
