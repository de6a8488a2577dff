"""A console-format daemon whose shutdown hook never returns; options as JSON in argv[1].

``main`` returns at once; the shutdown hook ``close_pool`` then waits for
ever, so the shutdown budget runs out and the stuck tasks are reported with
their await chains (a multi-line ``stack``), then the daemon exits 4.
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiodaemon


@aiodaemon.on_shutdown
async def close_pool() -> None:
    await asyncio.Event().wait()


async def main() -> None:
    return None


aiodaemon.run(main, **json.loads(sys.argv[1]))
