"""A daemon whose structlog calls fail to format; options as JSON in argv[1].

``main`` logs records whose %-format does not match their arguments, through
each kind of structlog method, then a good one, and returns.
"""

from __future__ import annotations

import json
import logging
import sys

import structlog

import aiodaemon


async def main() -> None:
    log = structlog.get_logger("shop").bind(order=42)
    log.warning("%s logged in from %s", "ann", "10.0.0.1", "extra")
    log.info("%d items", "many")
    await log.aerror("%s paid", "ann", "twice")
    log.log(logging.INFO, "%(user)s left", {"who": "ann"})
    try:
        raise ValueError("bad row")
    except ValueError:
        log.exception("row %s of %s", 7)
    log.info("after them")


aiodaemon.run(main, **json.loads(sys.argv[1]))
