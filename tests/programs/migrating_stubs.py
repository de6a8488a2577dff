"""What docs/migrating.md's asyncio example takes as given: ``db``, ``handle``, ``load_config``."""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger("app")


class Database:
    """A database client that only logs."""

    async def connect(self) -> None:
        """Log the connection."""
        log.info("db connected")

    async def close(self) -> None:
        """Log the close."""
        log.info("db closed")


db = Database()


def load_config() -> None:
    """Log the (re)load."""
    log.info("config loaded")


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo one line."""
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()
