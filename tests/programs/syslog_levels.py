"""A CLI target that logs one record per level, odd text and long records, then returns.

``aiodaemon run syslog_levels:main --syslog WHERE --log-level debug``: what a
syslog daemon receives is checked record by record.
"""

from __future__ import annotations

import logging

import structlog

log = structlog.get_logger("levels")

#: Sizes of the long records' blobs: beyond 1 KB, 8 KB and 64 KB.
LONG = (1500, 9000, 70_000)


async def main() -> None:
    """Log the records and return (the daemon then exits 0)."""
    log.debug("at debug")
    log.info("at info")
    log.warning("at warning")
    log.error("at error")
    log.critical("at critical")
    logging.getLogger("stdlib").warning("stdlib %s", "warning")
    log.info("caf\u00e9 \u65e5\u672c \u2028 end", text="two\nlines")
    for size in LONG:
        log.info("long", size=size, blob="y" * size)
