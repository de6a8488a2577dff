"""A daemon whose ``main`` logs flat out in sync code, keeping the loop from turning.

argv: options JSON, a marker file written once 1,000 records were logged. A
stop signal then lands anywhere in the logging code, the log's own included.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import structlog

import aiodaemon

options = json.loads(sys.argv[1])
marker = Path(sys.argv[2])


async def main() -> None:
    log = structlog.get_logger("flood")
    n = 0
    while True:  # no await: the loop never turns again
        log.info("n", n=n)
        n += 1
        if n == 1000:
            marker.write_text("1")


aiodaemon.run(main, **options)
