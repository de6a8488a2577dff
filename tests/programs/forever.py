"""A TARGET whose main runs until the daemon is stopped."""

from __future__ import annotations

import asyncio


async def main() -> None:
    """Wait for SIGTERM."""
    await asyncio.Event().wait()
