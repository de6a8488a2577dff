"""A daemon serving a line protocol through ``ctx.start_server``; the serving tests drive it.

Each connection sends lines and gets one answer per line:

* ``SLOW <id>`` -> ``done <id>`` after ``SERVING_DELAY`` seconds (default 1);
* ``HANG`` -> never answers (until cancelled);
* ``BLOCK <seconds>`` -> blocks the whole event loop while ``$SERVING_DIR/hold-loop``
  exists (``<seconds>`` at most), then ``unblocked``;
* ``QUIT`` -> ``bye``, then ``ctx.request_shutdown()``;
* ``POST <n>`` -> reads ``<n>`` bytes more (the body), then ``got <n>``;
* ``UPLOAD`` -> reads up to the client's end-of-stream, then ``got <bytes read>``;
* ``STARTTLS`` -> ``go``, then the connection goes on in TLS (``writer.start_tls``
  with ``$SERVING_DIR/cert.pem`` and ``key.pem``);
* ``PING`` -> ``PONG`` at once.

The readiness check fails while ``$SERVING_DIR/not-ready`` exists (raising
``TimeoutError`` when it says ``timed out``, never answering when it says
``hang``, nor ending when cancelled when it says ``stubborn``); the startup
hook waits while ``$SERVING_DIR/hold-startup`` exists, the reload hook while
``$SERVING_DIR/hold-reload`` exists, the shutdown hook while
``$SERVING_DIR/hold-shutdown`` exists. Run as ``aiodaemon run serving_app:main``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import ssl
import time
from pathlib import Path

import structlog

import aiodaemon

log = structlog.get_logger("serving_app")
DIR = Path(os.environ.get("SERVING_DIR", "."))
DELAY = float(os.environ.get("SERVING_DELAY", "1.0"))


async def _wait_while(flag: Path) -> None:
    # Polling a file: the test holds a hook open without any other channel.
    for _ in itertools.count():
        if not await asyncio.to_thread(flag.exists):
            return
        await asyncio.sleep(0.05)


@aiodaemon.on_startup
async def hold_startup() -> None:
    await _wait_while(DIR / "hold-startup")


@aiodaemon.on_reload
async def hold_reload() -> None:
    await _wait_while(DIR / "hold-reload")


@aiodaemon.on_shutdown
async def shutdown_hook() -> None:
    log.info("shutdown hook ran")
    await _wait_while(DIR / "hold-shutdown")


@aiodaemon.readiness_check
async def not_ready_flag() -> bool:
    try:
        how = await asyncio.to_thread((DIR / "not-ready").read_text)
    except FileNotFoundError:
        return True
    if how == "timed out":
        # What a database client raises when its connect gets ETIMEDOUT.
        raise TimeoutError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
    if how == "hang":
        await asyncio.Event().wait()
    if how == "stubborn":
        # A client library that retries on CancelledError: cancelling never ends it.
        log.info("stubborn check runs")
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
    return False


class Resource:
    """Something the program created itself and hands to ``ctx.track``."""

    def close(self) -> None:
        log.info("tracked resource closed")

    async def wait_closed(self) -> None:
        await asyncio.sleep(0.01)
        log.info("tracked resource wait_closed")


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            command, _, argument = line.decode().strip().partition(" ")
            if command == "SLOW":
                log.info("request", id=argument)
                await asyncio.sleep(DELAY)
                writer.write(f"done {argument}\n".encode())
            elif command == "HANG":
                log.info("request", id="hang")
                await asyncio.Event().wait()
            elif command == "POST":
                log.info("request", id="post")
                body = await reader.readexactly(int(argument))
                writer.write(f"got {len(body)}\n".encode())
            elif command == "UPLOAD":
                log.info("request", id="upload")
                data = await reader.read()
                writer.write(f"got {len(data)}\n".encode())
            elif command == "QUIT":
                writer.write(b"bye\n")
                CONTEXT[0].request_shutdown()
            elif command == "BLOCK":
                log.info("blocking", seconds=float(argument))
                # CPU-bound work that forgets to yield: the loop stands still
                # until the test removes the flag (a plain stat: no await here).
                end = time.monotonic() + float(argument)
                while time.monotonic() < end and (DIR / "hold-loop").exists():
                    pass
                writer.write(b"unblocked\n")
            elif command == "STARTTLS":
                writer.write(b"go\n")
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(DIR / "cert.pem", DIR / "key.pem")
                await writer.start_tls(context)
            else:
                writer.write(b"PONG\n")
            await writer.drain()
    finally:
        writer.close()


#: The running daemon's context, for QUIT.
CONTEXT: list[aiodaemon.Context] = []


async def main(ctx: aiodaemon.Context) -> None:
    CONTEXT.append(ctx)
    ctx.track(Resource())
    await ctx.start_server(handle, "app")
    await ctx.wait_stopping()
