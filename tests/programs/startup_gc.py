"""A detached daemon that reports, once ready, what the start-up left of the collector.

argv: the pidfile, the report file, and ``off`` to turn the collector off first.
"""

from __future__ import annotations

import gc
import json
import sys

import aiodaemon

if sys.argv[3:] == ["off"]:
    gc.disable()


async def main(ctx: aiodaemon.Context) -> None:
    """Write the collector's state, then wait for the stop."""
    with open(sys.argv[2], "w") as report:
        json.dump({"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}, report)
    await ctx.wait_stopping()


aiodaemon.run(main, pidfile=sys.argv[1], detach=True)
