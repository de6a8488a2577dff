"""tests/programs/uvicorn_as_is.py with a shutdown hook that takes a while.

uvicorn left with its own signal handlers restores, when it stops, the
SIGTERM/SIGINT handlers it found when it started: tests/test_servers.py checks
that a second SIGTERM during this hook still forces the exit.
"""

from __future__ import annotations

import asyncio

import structlog

import aiodaemon
from tests.programs.uvicorn_as_is import main

__all__ = ["main"]


@aiodaemon.on_shutdown
async def slow_hook() -> None:
    structlog.get_logger("slow_hook").info("hook running")
    await asyncio.sleep(30)
