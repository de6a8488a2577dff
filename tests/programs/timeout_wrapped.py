"""A foreground daemon run under GNU ``timeout``, whose shutdown hook records that it ran.

argv: options JSON, the record file. Writes ``ready`` once main runs and
``hook done`` at the end of its shutdown hook: a forced exit never writes it.
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiodaemon

options = json.loads(sys.argv[1])
record = sys.argv[2]


def note(line: str) -> None:
    """Append ``line`` to the record file."""
    with open(record, "a") as f:
        f.write(line + "\n")


@aiodaemon.on_shutdown
async def hook() -> None:
    await asyncio.sleep(0.05)
    note("hook done")


async def main(ctx: aiodaemon.Context) -> None:
    note("ready")
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
