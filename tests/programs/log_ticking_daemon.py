"""A detached daemon ticking through structlog and stdlib (argv: pidfile, log file)."""

from __future__ import annotations

import asyncio
import logging
import sys

import structlog

import aiodaemon

log = structlog.get_logger()


async def main() -> None:
    n = 0
    while True:
        log.info("tick", n=n)
        logging.getLogger("app.stdlib").info("stdlib tick %d", n)
        n += 1
        await asyncio.sleep(0.002)


aiodaemon.run(main, pidfile=sys.argv[1], log_file=sys.argv[2], detach=True)
