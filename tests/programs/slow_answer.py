"""A line service whose ``slow`` requests are answered once the file named by $SLOW_RELEASE exists.

Every answer is ``done <pid>``. Started with the console script
(``tests.programs.slow_answer:main``), so that an upgrade starts it again.
"""

from __future__ import annotations

import asyncio
import os

import aiodaemon
from tests.programs.recorder import wait_for_file


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one line, a ``slow`` one only after the test's go-ahead."""
    line = await reader.readline()
    if line.strip() == b"slow":
        await asyncio.to_thread(wait_for_file, os.environ["SLOW_RELEASE"], 60)
    writer.write(b"done %d\n" % os.getpid())
    await writer.drain()
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    """Serve on ``listen["http"]`` until the daemon stops."""
    await ctx.start_server(handle, "http")
    await ctx.wait_stopping()
