"""A daemon that does nothing until it is stopped; options as JSON in argv[1]."""

from __future__ import annotations

import asyncio
import json
import sys

import aiodaemon


async def main() -> None:
    await asyncio.Event().wait()


aiodaemon.run(main, **json.loads(sys.argv[1]))
