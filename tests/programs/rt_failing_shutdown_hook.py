"""Two shutdown hooks: the later registered one (run first) raises."""

from __future__ import annotations

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_shutdown
async def first_registered() -> None:
    record("first")


@aiodaemon.on_shutdown
async def broken() -> None:
    raise OSError("disk gone")


async def main() -> None:
    pass


run(main)
