"""A main that returns at once, and a shutdown hook."""

from __future__ import annotations

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_shutdown
async def bye() -> None:
    record("shutdown")


async def main() -> None:
    record("main done")


run(main)
