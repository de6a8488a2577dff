"""A daemon whose records carry keys named ``logger``; options as JSON in argv[1].

A keyword, a bound contextvar and a stdlib ``extra=`` key, each named like the
column that says which logger wrote the line.
"""

from __future__ import annotations

import json
import logging
import sys

import structlog

import aiodaemon


async def main() -> None:
    log = structlog.get_logger("shop")
    log.info("keyword", logger=123)
    log.info("keyword none", logger=None)
    logging.getLogger("payments").info("extra", extra={"logger": "FORGED", "ms": 812})
    structlog.contextvars.bind_contextvars(logger="bound")
    log.info("bound")
    logging.getLogger("payments").info("bound stdlib")


aiodaemon.run(main, **json.loads(sys.argv[1]))
