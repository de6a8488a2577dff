"""A daemon for the supervisor recipes (copied as echo.py): records reloads, stops slowly.

Its startup hook waits while a file ``hold`` lies beside it: a start the test
keeps in ``starting`` until it removes the file.

Its shutdown hook logs "shutdown hook started", sleeps a second, then logs
"shutdown hook finished": a forced exit shows as the second record missing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

import aiodaemon

HERE = Path(__file__).parent
_log = structlog.get_logger("supervised_app")


@aiodaemon.on_startup
async def wait_while_held() -> None:
    while (HERE / "hold").exists():  # noqa: ASYNC110 (a file the test removes)
        await asyncio.sleep(0.05)


@aiodaemon.on_reload
async def reloaded() -> None:
    with open(HERE / "reloads", "a", encoding="utf-8") as f:
        f.write("reload\n")


@aiodaemon.on_shutdown
async def close_slowly() -> None:
    _log.info("shutdown hook started")
    await asyncio.sleep(1)
    _log.info("shutdown hook finished")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
