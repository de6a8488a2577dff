"""A detached daemon whose startup hook fails (argv: the pidfile)."""

from __future__ import annotations

import sys

import aiodaemon


@aiodaemon.on_startup
async def connect() -> None:
    raise ConnectionRefusedError("database at db:5432 refused the connection")


async def main() -> None:
    pass


aiodaemon.run(main, pidfile=sys.argv[1], detach=True)
