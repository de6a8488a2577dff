"""Calls aiodaemon.run() from async code, under asyncio.run(): a mistake to explain."""

from __future__ import annotations

import asyncio

import aiodaemon


async def main() -> None:
    await asyncio.sleep(0)


async def program() -> None:
    aiodaemon.run(main(), detach=False)


asyncio.run(program())
