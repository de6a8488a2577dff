"""A small HTTP server whose handler takes a second: graceful shutdown drains it.

On SIGTERM the shutdown hook closes the listening socket first (new connections
are refused), then waits for every request in flight to get its full response,
all before the runtime cancels anything.

    python examples/http_drain.py --listen 127.0.0.1:8080 --pidfile /tmp/drain.pid
"""

from __future__ import annotations

import argparse
import asyncio

import structlog

import aiodaemon

log = structlog.get_logger("http_drain")
DELAY = 1.0
_server: asyncio.Server | None = None
_in_flight: set[asyncio.Task[None]] = set()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one request, think for DELAY seconds, answer, close."""
    task = asyncio.current_task()
    assert task is not None
    _in_flight.add(task)
    try:
        request_line = await reader.readline()
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
    finally:
        _in_flight.discard(task)
        writer.close()


@aiodaemon.on_shutdown
async def drain() -> None:
    """Stop accepting, then wait for the requests already accepted."""
    if _server is not None:
        _server.close()
    if _in_flight:
        log.info("draining", in_flight=len(_in_flight))
        await asyncio.wait(set(_in_flight))


async def main(ctx: aiodaemon.Context) -> None:
    """Serve HTTP on the framework's ``http`` socket until shutdown."""
    global _server
    _server = await asyncio.start_server(handle, sock=ctx.sockets["http"], backlog=1024)
    await ctx.wait_stopping()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="slow HTTP server that drains on SIGTERM")
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--pidfile", default=None)
    parser.add_argument("--log-file", default=None)
    parser.add_argument("--foreground", action="store_true")
    args = parser.parse_args()
    aiodaemon.run(
        main,
        pidfile=args.pidfile,
        listen={"http": args.listen},
        log_file=args.log_file,
        detach=False if args.foreground else None,
    )
