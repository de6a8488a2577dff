"""A daemon whose records ask for the stack they were logged from; options as JSON in argv[1]."""

from __future__ import annotations

import json
import logging
import sys

import structlog

import aiodaemon

log = structlog.get_logger("shop")


def checkout() -> None:
    log.info("structlog stack", stack_info=True)


async def main() -> None:
    checkout()
    logging.getLogger("shop").info("stdlib stack", stack_info=True)
    log.info("no stack", stack_info=False)
    await log.ainfo("awaited stack", stack_info=True)


aiodaemon.run(main, **json.loads(sys.argv[1]))
