"""A server run as PID 1's daemon: its shutdown hook closes the server, then lingers.

argv: the TCP port to listen on, the record file.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon

PORT, RECORD = int(sys.argv[1]), sys.argv[2]
servers: list[asyncio.Server] = []


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hi\n")
    writer.close()


@aiodaemon.on_shutdown
async def close_then_linger() -> None:
    for server in servers:
        server.close()
        await server.wait_closed()
    record("closed")
    # Still running, listener closed: a new connection must now be refused.
    await asyncio.sleep(30)


async def main(ctx: aiodaemon.Context) -> None:
    servers.append(await asyncio.start_server(answer, sock=ctx.sockets["http"]))
    record("serving")
    await ctx.wait_stopping()


aiodaemon.run(main, listen={"http": f"127.0.0.1:{PORT}"}, shutdown_timeout=60)
