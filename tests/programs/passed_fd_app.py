"""Serves ``listen=`` ``http`` and, by its systemd number, a passed socket no name claims.

The unclaimed socket's number is ``$APP_PASSED_FD`` (docs/systemd.md: the
numbers systemd gave, from 3 up). Both answer ``<pid>\\n`` and close.
"""

from __future__ import annotations

import asyncio
import os
import socket

import aiodaemon


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"%d\n" % os.getpid())
    await writer.drain()
    writer.close()


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    """Serve http, and the passed fd by its number (refused at once if it is no socket)."""
    await ctx.start_server(_answer, "http")
    passed = socket.socket(fileno=os.dup(int(os.environ["APP_PASSED_FD"])))
    if passed.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 1:
        raise RuntimeError("the passed fd is not a listening socket")
    # Not start_unix_server: from 3.13 its server unlinks the path as it
    # closes, and the old daemon's close at an upgrade took the successor's file.
    ctx.track(await asyncio.start_server(_answer, sock=passed))


async def main(ctx: aiodaemon.Context) -> None:
    """Serve until stopped."""
    await ctx.wait_stopping()
