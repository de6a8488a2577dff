"""A startup hook returning a value (a connection it meant to keep), one returning None."""

from __future__ import annotations

import aiodaemon
from tests.programs.recorder import record, run


async def connect() -> str:
    record("connect")
    return "a connection"


async def plain() -> None:
    record("plain")


aiodaemon.on_startup(connect)
aiodaemon.on_startup(plain)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
