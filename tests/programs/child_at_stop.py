"""A daemon whose shutdown hook ends the helper it started and waits for it, as docs advise."""

from __future__ import annotations

import asyncio
import sys

import aiodaemon

_helper: asyncio.subprocess.Process | None = None


@aiodaemon.on_startup
async def start_helper() -> None:
    global _helper
    _helper = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(3600)"
    )


@aiodaemon.on_shutdown
async def stop_helper() -> None:
    assert _helper is not None
    _helper.terminate()
    await _helper.wait()


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
