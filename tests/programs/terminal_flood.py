"""A foreground daemon that logs a flood of warnings at start, and one more at shutdown."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import structlog

import aiodaemon
from tests.programs.recorder import run

#: Far more than a terminal buffers (some 64 KB): it must stall on one that is not read.
FLOOD = 4000

log = structlog.get_logger()


@aiodaemon.on_shutdown
async def stopping() -> None:
    log.warning("stopping")


async def main(ctx: aiodaemon.Context) -> None:
    for n in range(FLOOD):
        log.warning("flood", n=n, pad="x" * 120)
    # Once the last one is in the file, the writer took its batch, echo included:
    # "flood done" comes in a later batch, so the test knows the echo is through.
    log_file = Path(json.loads(sys.argv[1])["log_file"])
    last = f'"n":{FLOOD - 1},'.encode()
    while True:
        if last in log_file.read_bytes():
            break
        await asyncio.sleep(0.01)
    log.info("flood done")
    await ctx.wait_stopping()


run(main)
