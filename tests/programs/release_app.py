"""A service for release-directory upgrade tests: answers ``<VERSION> <marker> <sys.prefix> <pid>``.

Each release directory holds a copy (``VERSION`` edited) and its own virtual
environment, whose ``release_marker`` module names the release: the answer
says which code runs, on which environment's interpreter and packages.
Started as the console script's target ``release_app:main`` or as
``python release_app.py`` (pidfile and log file from ``APP_PIDFILE``, ``APP_LOG``; in the
foreground if ``APP_FOREGROUND`` is set).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys

import aiodaemon

VERSION = "v1"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one request, then close."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        # The release's environment's own module, not this file's directory's.
        marker = importlib.import_module("release_marker").RELEASE
        body = f"{VERSION} {marker} {sys.prefix} {os.getpid()}\n".encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    """Serve on ``listen["http"]`` until the daemon stops."""
    await ctx.start_server(handle, "http")
    await ctx.wait_stopping()


if __name__ == "__main__":
    aiodaemon.run(
        main,
        pidfile=os.environ["APP_PIDFILE"],
        listen={"http": "127.0.0.1:0"},
        log_file=os.environ["APP_LOG"],
        shutdown_timeout=10.0,
        detach=not os.environ.get("APP_FOREGROUND"),
    )
