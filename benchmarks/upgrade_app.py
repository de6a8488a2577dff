"""The service upgraded by benchmarks/upgrade.py, as an aiodaemon program and as a WSGI app.

Both answer every request with ``200 OK`` and ``<pid>\\n``; the aiodaemon one
over ``ctx.start_server`` (keep-alive honoured), the WSGI one under gunicorn's
``gthread`` worker (keep-alive too).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import Any

import aiodaemon


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer requests until the client closes or the daemon stops accepting."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            body = b"%d\n" % os.getpid()
            keep = b"connection: close" not in head.lower()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: %s\r\n\r\n%s"
                % (len(body), b"keep-alive" if keep else b"close", body)
            )
            await writer.drain()
            if not keep:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    """Serve on ``listen["http"]`` until the daemon stops."""
    await ctx.start_server(handle, "http")
    await ctx.wait_stopping()


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The same answer for gunicorn."""
    body = b"%d\n" % os.getpid()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
