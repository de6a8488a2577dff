"""A startup hook that gives up on its database after a while (a connect timeout)."""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_startup
async def check_config() -> None:
    await asyncio.sleep(0.2)


@aiodaemon.on_startup
async def connect_database() -> None:
    await asyncio.sleep(0.5)
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


async def main() -> None:
    record("main running")


run(main)
