"""Records the module of the running loop's type."""

from __future__ import annotations

import asyncio

from tests.programs.recorder import record, run


async def main() -> None:
    record(type(asyncio.get_running_loop()).__module__)


run(main)
