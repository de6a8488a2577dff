"""A gRPC service (grpcio's asyncio API) run by aiodaemon: drained at a stop and an upgrade.

gRPC binds its port itself: it cannot serve a socket aiodaemon bound (no
``listen=``). It binds with ``SO_REUSEPORT`` (gRPC's ``grpc.so_reuseport``, on
by default on Linux), which is what lets an upgrade's new process bind the same
port beside the old one. The server is started in a startup hook, so a port in
use fails ``aiodaemon start`` with gRPC's error, and handed to aiodaemon's
shutdown sequence with ``ctx.track``:

* at a stop, ``/readyz`` says 503 at once and RPCs are served for
  ``--drain-delay`` seconds; then ``server.stop(grace)`` refuses new RPCs (it
  sends clients GOAWAY, and they connect again elsewhere), RPCs in flight run
  to their end (for at most a third of ``shutdown_timeout``), and the daemon
  exits 0;
* at an ``aiodaemon upgrade`` the same happens at the hand-over, once the new
  process serves: clients move to it;
* gRPC's threads start with the server, after the detach.

    GRPC_ADDRESS=127.0.0.1:50051 aiodaemon start examples.grpc_app:main \\
        --pidfile /tmp/grpc.pid --health 127.0.0.1:8081 --log-file /tmp/grpc.jsonl
    aiodaemon upgrade --pidfile /tmp/grpc.pid
    aiodaemon stop --pidfile /tmp/grpc.pid

The service, ``echo.Echo/Say``, takes and gives raw bytes (no generated code):
it answers the request followed by ``from <pid>``, after ``?delay=S`` seconds
when the request ends so.
"""

from __future__ import annotations

import asyncio
import logging
import os

import grpc

import aiodaemon

#: Where gRPC binds (``host:port``).
ADDRESS = os.environ.get("GRPC_ADDRESS", "127.0.0.1:50051")
log = logging.getLogger("echo")


async def say(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    """The request, then the pid that answered; slow when it ends in ``?delay=S``."""
    _, _, delay = request.partition(b"?delay=")
    if delay:
        log.info("slow request", extra={"seconds": float(delay)})
        await asyncio.sleep(float(delay))
    return request + f" from {os.getpid()}".encode()


ECHO = grpc.method_handlers_generic_handler(
    "echo.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
)


class GrpcServer:
    """What ctx.track() closes when the daemon stops accepting."""

    def __init__(self, server: grpc.aio.Server, grace: float) -> None:
        self.server, self.grace = server, grace

    async def close(self) -> None:
        # New RPCs refused (GOAWAY), those in flight given `grace` seconds to end.
        await self.server.stop(self.grace)


@aiodaemon.on_startup
async def serve_grpc(ctx: aiodaemon.Context) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((ECHO,))
    server.add_insecure_port(ADDRESS)  # RuntimeError when it cannot bind: the start fails
    await server.start()
    ctx.track(GrpcServer(server, ctx.options.shutdown_timeout / 3))


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
