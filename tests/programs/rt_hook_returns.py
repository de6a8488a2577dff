"""Hooks returning a value (a connection meant to be kept, a status), and one returning None."""

from __future__ import annotations

import aiodaemon
from tests.programs.recorder import record, run


async def connect() -> str:
    record("connect")
    return "a connection"


async def plain() -> None:
    record("plain")


async def reconnect() -> str:
    record("reconnect")
    return "a new connection"


async def close() -> int:
    record("close")
    return 1


aiodaemon.on_startup(connect)
aiodaemon.on_startup(plain)
aiodaemon.on_reload(reconnect)
aiodaemon.on_shutdown(close)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
