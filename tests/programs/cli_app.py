"""The CLI's main example: records its startup and reloads next to itself (copied as app.py)."""

from __future__ import annotations

import os
from pathlib import Path

import aiodaemon

HERE = Path(__file__).parent


@aiodaemon.on_startup
async def started() -> None:
    (HERE / "started").write_text(str(os.getpid()), encoding="utf-8")


@aiodaemon.on_reload
async def reloaded() -> None:
    with open(HERE / "reloads", "a", encoding="utf-8") as f:
        f.write("reload\n")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


def sync_main() -> None:
    pass


async def two_args(a: object, b: object) -> None:
    pass


CONFIG = {"a": 1}
