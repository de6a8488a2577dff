"""Serves "hi" on the listen= socket named http, through a socket of its own on that descriptor.

As hypercorn's ``fd://N`` bind does (``socket.socket(fileno=N)``): the server
owns the descriptor, and closing it as it stops closes the daemon's listener.
"""

from __future__ import annotations

import asyncio
import socket

import aiodaemon
from tests.programs.recorder import run


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hi\n")
    writer.close()


class FdServer:
    """The server and the socket it made on the descriptor, closed together."""

    def __init__(self, server: asyncio.Server, sock: socket.socket) -> None:
        self.server, self.sock = server, sock

    def close(self) -> None:
        self.server.close()
        self.sock.close()


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    sock = socket.socket(fileno=ctx.sockets["http"].fileno())
    server = await asyncio.start_server(handle, sock=sock)
    ctx.track(FdServer(server, sock))


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
