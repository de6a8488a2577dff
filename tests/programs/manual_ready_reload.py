"""ready="manual": a reload runs before main reports ready; argv: options, record."""

from __future__ import annotations

import asyncio
import json
import sys

import aiodaemon

RECORD = sys.argv[2]
reloaded = asyncio.Event()


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


@aiodaemon.on_reload
async def reload() -> None:
    record("reloaded")
    reloaded.set()


async def main(ctx: aiodaemon.Context) -> None:
    record("main waiting")
    await reloaded.wait()
    ctx.notify_ready()
    record("ready")
    await ctx.wait_stopping()


aiodaemon.run(main, **json.loads(sys.argv[1]))
