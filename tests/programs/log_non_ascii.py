"""A daemon that logs one warning in non-ASCII text; options as JSON in argv[1]."""

from __future__ import annotations

import json
import sys

import structlog

import aiodaemon


async def main() -> None:
    structlog.get_logger("shop").warning("café €", city="Zürich")


aiodaemon.run(main, **json.loads(sys.argv[1]))
