"""Hangs in a shutdown hook, so that a second stop signal forces the exit.

argv: options (JSON), record. Records "main running", then "stopping" when
its shutdown hook begins (and never returns).
"""

from __future__ import annotations

import asyncio

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_shutdown
async def hang() -> None:
    record("stopping")
    await asyncio.Event().wait()


async def main(ctx: aiodaemon.Context) -> None:
    record("main running")
    await ctx.wait_stopping()


run(main)
