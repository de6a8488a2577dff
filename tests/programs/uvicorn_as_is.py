"""uvicorn.Server as its documentation shows it, without examples/uvicorn_app.py's glue.

Served from ``main`` and stopped through ``ctx.track``, but with uvicorn's own
signal handlers (``capture_signals``) and its default ``log_config``:
tests/test_servers.py checks what docs/servers.md says happens then.
"""

from __future__ import annotations

import asyncio

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import aiodaemon


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello\n")


app = Starlette(routes=[Route("/", hello)])


class Stop:
    """Asks uvicorn to stop when the daemon stops accepting."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        self.server = server
        self.task = task

    async def close(self) -> None:
        self.server.should_exit = True
        await self.task


async def main(ctx: aiodaemon.Context) -> None:
    server = uvicorn.Server(uvicorn.Config(app))
    task = asyncio.create_task(server.serve(sockets=[ctx.sockets["http"]]))
    ctx.track(Stop(server, task))
    await ctx.wait_stopping()
