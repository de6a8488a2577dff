"""A startup hook that waits for ever on a database that never answers."""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import record, run


async def connect_database() -> None:
    await asyncio.Event().wait()


@aiodaemon.on_startup
async def check_config() -> None:
    record("config checked")


@aiodaemon.on_startup
async def open_pool() -> None:
    record("connecting")
    await connect_database()


async def main() -> None:
    record("main running")


run(main)
