"""A manual-ready main that raises before reporting (argv: the pidfile)."""

from __future__ import annotations

import sys

import aiodaemon


async def main(ctx: aiodaemon.Context) -> None:
    raise PermissionError("cannot bind port 80")


aiodaemon.run(main, pidfile=sys.argv[1], detach=True, ready="manual")
