"""A Daemon object with its own hooks, and the module's main as its program."""

from __future__ import annotations

import os
from pathlib import Path

import aiodaemon

daemon = aiodaemon.Daemon()


@daemon.on_startup
async def started() -> None:
    Path(__file__).with_name("daemon-started").write_text(str(os.getpid()))


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


class WithMain(aiodaemon.Daemon):
    """A Daemon subclass whose program is its own ``main`` method."""

    async def main(self, ctx: aiodaemon.Context) -> None:
        Path(__file__).with_name("subclass-main").write_text(str(os.getpid()))
        await ctx.wait_stopping()


subclassed = WithMain()
