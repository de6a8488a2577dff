"""A startup hook that raises; main records if it ever runs."""

from __future__ import annotations

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_startup
async def broken() -> None:
    raise RuntimeError("config missing")


async def main() -> None:
    record("main ran")


run(main)
