"""A Starlette application on hypercorn under aiodaemon, as docs/servers.md shows it.

GET / answers "hello from PID"; GET /slow?seconds=S answers after S seconds
(a request in flight at a stop) and logs ``slow request`` first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import structlog
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import aiodaemon

log = structlog.get_logger("hypercorn_app")


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello from {os.getpid()}\n")


async def slow(request: Request) -> PlainTextResponse:
    seconds = float(request.query_params.get("seconds", "1"))
    log.info("slow request", seconds=seconds)
    await asyncio.sleep(seconds)
    return PlainTextResponse(f"slept {seconds} in {os.getpid()}\n")


app = Starlette(routes=[Route("/", hello), Route("/slow", slow)])


class Hypercorn:
    """What ctx.track() closes when the daemon stops accepting."""

    def __init__(self, stop: asyncio.Event, task: asyncio.Task[None]) -> None:
        self.stop, self.task = stop, task

    async def close(self) -> None:
        self.stop.set()  # hypercorn's shutdown_trigger: it stops accepting and drains
        await self.task


@aiodaemon.on_startup
async def serve_app(ctx: aiodaemon.Context) -> None:
    config = Config()
    config.bind = [f"fd://{ctx.sockets['http'].fileno()}"]
    config.backlog = socket.SOMAXCONN
    config.graceful_timeout = ctx.options.shutdown_timeout / 3
    config.accesslog = logging.getLogger("hypercorn.access")
    config.errorlog = logging.getLogger("hypercorn.error")
    stop = asyncio.Event()
    # hypercorn types ASGI applications more narrowly than Starlette declares its own.
    served = serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    task = asyncio.create_task(served)
    ctx.track(Hypercorn(stop, task))

    def ended(t: asyncio.Task[None]) -> None:
        # hypercorn ending on its own (its lifespan startup failed) ends the
        # daemon too; stopped by the daemon's own shutdown, it asks nothing.
        failed = not t.cancelled() and t.exception() is not None
        if failed or ctx.state is not aiodaemon.State.STOPPING:
            ctx.request_shutdown(1 if failed else 0)

    task.add_done_callback(ended)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
