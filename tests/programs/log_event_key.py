"""A daemon logging a stdlib record with an ``extra=`` key named ``event``; options in argv[1]."""

from __future__ import annotations

import json
import logging
import sys

import aiodaemon


async def main() -> None:
    logging.getLogger("audit").info("alice logged in", extra={"event": "login", "user": "alice"})


aiodaemon.run(main, **json.loads(sys.argv[1]))
