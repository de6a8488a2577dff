"""A program that calls aiodaemon.run() at import, without a __main__ guard (copied as noguard.py).

Run as ``python noguard.py`` it is a working daemon with its own pidfile
(``ng.pid`` next to itself); given to the CLI as TARGET it must be refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import aiodaemon

HERE = Path(__file__).parent


@aiodaemon.on_startup
async def started() -> None:
    (HERE / "started").write_text(str(os.getpid()))


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, pidfile=str(HERE / "ng.pid"), detach=True)
