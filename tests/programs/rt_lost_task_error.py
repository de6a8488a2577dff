"""A task whose exception nobody retrieves, and one destroyed while still pending."""

from __future__ import annotations

import asyncio
import gc

import aiodaemon
from tests.programs.recorder import record, run


async def fail() -> None:
    raise ValueError("the task's error")


async def main(ctx: aiodaemon.Context) -> None:
    task = asyncio.create_task(fail(), name="fetch-orders")
    await asyncio.wait([task])
    # Dropped unread: asyncio reports the exception when the task is collected.
    del task
    gc.collect()
    record("dropped")
    await ctx.wait_stopping()


run(main)
