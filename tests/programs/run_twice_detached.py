"""A program that runs a daemon in the foreground, then detaches a second one.

argv: pidfile for the second run. The first ``main`` returns at once (the
daemon ends, status 0, its ``SystemExit`` caught); the second run detaches and
idles until stopped.
"""

from __future__ import annotations

import sys

import aiodaemon


async def quick() -> None:
    """Ends the first daemon at once."""


async def idle(ctx: aiodaemon.Context) -> None:
    """The second daemon: idle until stopped."""
    await ctx.wait_stopping()


try:
    aiodaemon.run(quick, detach=False)
except SystemExit as first:
    if first.code != 0:
        raise
aiodaemon.run(idle, detach=True, pidfile=sys.argv[1])
