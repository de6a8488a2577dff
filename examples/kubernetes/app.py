"""A small HTTP service for Kubernetes: ``aiodaemon run app:main`` is the container's entrypoint.

The Deployment next to this file passes ``--listen http=:8080 --health :8081
--drain-delay 5 --shutdown-timeout 20``: probes go to the health
port, traffic to ``http``, and a rolling update loses no request (see
docs/kubernetes.md).
"""

from __future__ import annotations

import asyncio

import structlog

import aiodaemon

log = structlog.get_logger("app")

#: The answer to a request line or header longer than the reader's limit (64 KiB).
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer each HTTP/1.1 request on the connection (keep-alive) with a short text."""
    try:
        while request_line := await reader.readline():
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # headers: this service needs none of them
            body = b"hello from aiodaemon\n"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            await writer.drain()
            log.debug("request", line=request_line.decode("latin-1").strip())
    except ValueError:
        # readline() past the limit: say so, as HTTP servers do, and close
        # (the rest of that request is not read).
        writer.write(TOO_LARGE)
        await writer.drain()
    finally:
        writer.close()


@aiodaemon.readiness_check
async def can_serve() -> bool:
    """Say whether the dependencies this pod needs answer (a database ping, say)."""
    return True


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    """Serve ``http``; the framework drains it at SIGTERM.

    In a startup hook: the startup probe and ``/readyz`` pass only once it serves,
    and a server that cannot start fails the pod's start.
    """
    await ctx.start_server(handle, "http")


async def main(ctx: aiodaemon.Context) -> None:
    """Run until SIGTERM: the server started by ``serve`` does the work."""
    await ctx.wait_stopping()
