"""Log 2,000 records of 200 KB each at once, then mark that it did (argv[1]) and wait."""

from __future__ import annotations

import sys
from pathlib import Path

import structlog

import aiodaemon

log = structlog.get_logger()


async def main(ctx: aiodaemon.Context) -> None:
    # A traceback-sized value in every record: what a failing request logs.
    blob = "x" * 200_000
    for n in range(2000):
        log.info("big", n=n, blob=blob)
    Path(sys.argv[1]).write_text("logged\n")
    await ctx.wait_stopping()


if __name__ == "__main__":
    aiodaemon.run(main, detach=False)
