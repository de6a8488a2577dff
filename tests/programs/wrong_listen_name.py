"""A startup hook that asks ``ctx.sockets`` for a ``listen=`` name it was not given."""

from __future__ import annotations

import asyncio

import aiodaemon


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    """Look up the socket by a name the command line did not give."""
    ctx.sockets["http"].listen()


async def main() -> None:
    """Wait for SIGTERM (never reached: the startup hook fails)."""
    await asyncio.Event().wait()
