"""A daemon serving ``http`` whose shutdown hook waits until a release file appears.

argv: options JSON, the release file's path. While the hook waits, the daemon
is stopping and its listener is closed: what ``status`` says then is the point.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiodaemon

options = json.loads(sys.argv[1])
release = sys.argv[2]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@aiodaemon.on_shutdown
async def held() -> None:
    while not os.path.exists(release):  # noqa: ASYNC110 (a file another process writes)
        await asyncio.sleep(0.02)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.start_server(echo, "http")
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
