"""A daemon whose shutdown waits while the file ``hold-<its pid>`` exists beside it (60 s at most).

Copied as ``app.py``: an upgrade's old daemon then drains for as long as the
test holds it, while its successor stops at once.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiodaemon

HERE = Path(__file__).parent


@aiodaemon.on_shutdown
async def held() -> None:
    hold = HERE / f"hold-{os.getpid()}"
    for _ in range(3000):
        if not hold.exists():
            return
        await asyncio.sleep(0.02)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
