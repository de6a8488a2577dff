"""A reload hook failing the first time, and a second hook after it."""

from __future__ import annotations

import aiodaemon
from tests.programs.recorder import record, run

attempts = 0


@aiodaemon.on_reload
async def validate() -> None:
    global attempts
    attempts += 1
    if attempts == 1:
        raise ValueError("bad config line 3")
    record("validated")


@aiodaemon.on_reload
async def apply() -> None:
    record("applied")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
