"""cli_app with on_signal handlers for SIGALRM, SIGQUIT and SIGRTMIN+2 (copied as app.py).

Its startup hook records ``started`` next to it, then holds the start while
a ``hold`` file is there (the test removes it).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiodaemon

HERE = Path(__file__).parent


@aiodaemon.on_startup
async def started() -> None:
    (HERE / "started").write_text(str(os.getpid()), encoding="utf-8")
    # A file the test removes from outside: polled, no event to wait on.
    while (HERE / "hold").exists():  # noqa: ASYNC110
        await asyncio.sleep(0.01)


@aiodaemon.on_signal(signal.SIGALRM)
async def alarm() -> None:
    pass


@aiodaemon.on_signal(signal.SIGQUIT)
async def quit_() -> None:
    pass


@aiodaemon.on_signal(signal.SIGRTMIN + 2)
async def realtime() -> None:
    pass


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
