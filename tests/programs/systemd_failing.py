"""A foreground daemon whose startup hook fails."""

from __future__ import annotations

import aiodaemon


@aiodaemon.on_startup
async def connect() -> None:
    raise ConnectionRefusedError("database at db:5432 refused")


async def main() -> None:
    pass


aiodaemon.run(main)
