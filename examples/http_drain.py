"""A small HTTP server whose handler takes a second: graceful shutdown drains it.

``ctx.start_server`` makes the drain the framework's job: on SIGTERM the daemon
reports not-ready (``/readyz`` 503 with ``--health``), keeps accepting for
``--drain-delay`` seconds, then closes the listening socket (new connections are
refused) and waits for every request in flight to get its full response before
the shutdown hooks run. No module globals, no shutdown hook.

    .venv/bin/python examples/http_drain.py --listen 127.0.0.1:8080 --pidfile /tmp/drain.pid \\
        --health 127.0.0.1:8081 --drain-delay 2
"""

from __future__ import annotations

import argparse
import asyncio

import structlog

import aiodaemon

log = structlog.get_logger("http_drain")
DELAY = 1.0
#: The answer to a request line or header longer than the reader's limit (64 KiB).
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one request, think for DELAY seconds, answer, close."""
    try:
        request_line = await reader.readline()
        if not request_line:
            return  # an idle connection closed at shutdown, or by the client
        log.info("request", line=request_line.decode("latin-1").strip())
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        await asyncio.sleep(DELAY)
        path = request_line.split(b" ")[1] if request_line.count(b" ") >= 2 else b"/"
        body = b"done " + path + b"\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
    except ValueError:
        # readline() past the reader's limit (64 KiB): say so, and close.
        writer.write(TOO_LARGE)
        await writer.drain()
    finally:
        writer.close()


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    """Serve HTTP on the framework's ``http`` socket: a failure to start fails the start."""
    await ctx.start_server(handle, "http")


async def main(ctx: aiodaemon.Context) -> None:
    """Run until shutdown: the server started by ``serve`` does the work."""
    await ctx.wait_stopping()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="slow HTTP server that drains on SIGTERM")
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--pidfile", default=None)
    parser.add_argument("--log-file", default=None)
    parser.add_argument("--foreground", action="store_true")
    parser.add_argument("--health", default=None, help="host:port for /livez and /readyz")
    parser.add_argument("--drain-delay", type=float, default=0.0)
    args = parser.parse_args()
    aiodaemon.run(
        main,
        pidfile=args.pidfile,
        listen={"http": args.listen},
        log_file=args.log_file,
        detach=False if args.foreground else None,
        health=args.health,
        drain_delay=args.drain_delay,
    )
