"""A daemon whose program printed a banner before run(), left in stdout's buffer.

argv: options JSON. Started with stdout on a target that fails (a reader gone,
a full disk), the flush before the fork fails too.
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiodaemon

print("starting the service")  # block-buffered: stdout is no terminal


async def main() -> None:
    await asyncio.Event().wait()


aiodaemon.run(main, **json.loads(sys.argv[1]))
