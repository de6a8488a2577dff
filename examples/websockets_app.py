"""A websockets server run by aiodaemon: long-lived connections told to go away at a stop.

The server is websockets' own (``websockets.asyncio.server.serve``) on the socket
aiodaemon bound (``listen=``), started in a startup hook and handed to
aiodaemon's shutdown sequence with ``ctx.track``:

* at a stop (SIGTERM, ``aiodaemon stop``), ``/readyz`` says 503 at once and new
  connections are still taken for ``--drain-delay`` seconds; then the server
  closes: new connections are refused, and every open one gets the close code
  1001 (going away), its handler ends and the daemon exits 0;
* at an ``aiodaemon upgrade`` the same happens at the hand-over: each client
  gets 1001 and reconnects, to the new process, which already accepts on the
  same socket;
* websockets' records (``websockets.server``) land in the daemon's JSON log.

    aiodaemon start examples.websockets_app:main --pidfile /tmp/ws.pid \\
        --listen ws=127.0.0.1:8765 --health 127.0.0.1:8766 --log-file /tmp/ws.jsonl
    aiodaemon upgrade --pidfile /tmp/ws.pid
    aiodaemon stop --pidfile /tmp/ws.pid
"""

from __future__ import annotations

import os
import socket

from websockets.asyncio.server import ServerConnection, serve

import aiodaemon


async def echo(websocket: ServerConnection) -> None:
    """Answer each message with itself and the pid that answered."""
    async for message in websocket:
        await websocket.send(f"{message!s} from {os.getpid()}")


@aiodaemon.on_startup
async def serve_websockets(ctx: aiodaemon.Context) -> None:
    # backlog: asyncio listen()s again with the one it is given (100 by default).
    server = await serve(echo, sock=ctx.sockets["ws"], backlog=socket.SOMAXCONN)
    # Closed after the drain delay (or at an upgrade's hand-over): 1001 to every client.
    ctx.track(server)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
