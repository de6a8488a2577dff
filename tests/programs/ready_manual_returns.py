"""A manual-ready main that returns without reporting (argv: the pidfile)."""

from __future__ import annotations

import sys

import aiodaemon


async def main(ctx: aiodaemon.Context) -> None:
    return


aiodaemon.run(main, pidfile=sys.argv[1], detach=True, ready="manual")
