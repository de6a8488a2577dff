"""A startup hook that ignores cancellation until argv[3] exists; argv: options, record, file."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiodaemon

RECORD, RELEASE = sys.argv[2], sys.argv[3]


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


@aiodaemon.on_startup
async def stubborn() -> None:
    record("startup")
    while True:
        try:
            if await asyncio.to_thread(os.path.exists, RELEASE):
                return
            await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            record("cancel ignored")


@aiodaemon.on_startup
async def after() -> None:
    record("later startup hook")


@aiodaemon.on_shutdown
async def down() -> None:
    record("shutdown hook")


async def main() -> None:
    record("main ran")


aiodaemon.run(main, **json.loads(sys.argv[1]))
