"""Fills a stderr pipe nobody reads, then hangs in a shutdown hook; argv: options, record."""

from __future__ import annotations

import asyncio
import json
import sys

import structlog

import aiodaemon

RECORD = sys.argv[2]


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


@aiodaemon.on_shutdown
async def hang() -> None:
    record("stopping")
    await asyncio.Event().wait()


async def main(ctx: aiodaemon.Context) -> None:
    log = structlog.get_logger("filler")
    # Far more than a pipe holds (64 KiB): the log writer blocks on the sink.
    for i in range(4000):
        log.info("filler", n=i, padding="x" * 100)
    record("main running")
    await ctx.wait_stopping()


aiodaemon.run(main, **json.loads(sys.argv[1]))
