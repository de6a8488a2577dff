"""A task whose exception nobody awaits."""

from __future__ import annotations

import asyncio
import gc

from tests.programs.recorder import run


async def boom() -> None:
    raise KeyError("lost")


async def main() -> None:
    asyncio.create_task(boom())  # noqa: RUF006 - left unawaited on purpose
    await asyncio.sleep(0.05)
    gc.collect()
    await asyncio.sleep(0.05)


run(main)
