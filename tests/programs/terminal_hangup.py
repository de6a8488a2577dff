"""A foreground daemon for a terminal's hang-up: records ``reload`` and ``shutdown``."""

from __future__ import annotations

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_reload
async def reloaded() -> None:
    record("reload")


@aiodaemon.on_shutdown
async def stopping() -> None:
    record("shutdown")


async def main(ctx: aiodaemon.Context) -> None:
    record("main")
    await ctx.wait_stopping()


run(main)
