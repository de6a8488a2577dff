"""A daemon whose shutdown hook holds its event loop (sync code) until a release file appears.

argv: options JSON, the release file's path, and ``forever`` for a ``main``
that never returns (the shutdown cancels it) rather than one that returns once
stopping. The hook logs ``loop held`` first. While it holds the loop, the
control socket is open but nobody reads it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import structlog

import aiodaemon

options = json.loads(sys.argv[1])
release = sys.argv[2]
forever = sys.argv[3:] == ["forever"]


@aiodaemon.on_shutdown
async def hold() -> None:
    structlog.get_logger().info("loop held")
    deadline = time.monotonic() + 60
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)  # blocks the loop thread on purpose: sync code in a hook


async def main(ctx: aiodaemon.Context) -> None:
    if forever:
        await asyncio.Event().wait()
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
