"""A foreground daemon logging a warning far larger than a terminal takes, two more, then done.

argv[1]: the options as JSON.
"""

from __future__ import annotations

import json
import sys

import structlog

import aiodaemon

log = structlog.get_logger()


async def main() -> None:
    log.warning("big", blob="x" * 300_000)
    log.warning("after the big one")
    log.error("the last error")


aiodaemon.run(main, **json.loads(sys.argv[1]))
