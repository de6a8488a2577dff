"""A daemon that records which aiodaemon it runs on, next to itself (copied as app.py)."""

from __future__ import annotations

from pathlib import Path

import aiodaemon

HERE = Path(__file__).parent


@aiodaemon.on_startup
async def started() -> None:
    (HERE / "aiodaemon_file").write_text(aiodaemon.__file__ or "", encoding="utf-8")


@aiodaemon.on_reload
async def reloaded() -> None:
    with open(HERE / "reloads", "a", encoding="utf-8") as f:
        f.write("reload\n")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
