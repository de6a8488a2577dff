"""A shutdown hook that records "blocking" and then blocks the loop thread for a minute."""

from __future__ import annotations

import time

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_shutdown
async def block() -> None:
    record("blocking")
    time.sleep(60)  # blocks the loop thread on purpose: sync code in a hook


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
