"""A daemon whose threads log flat out, its shutdown hook waiting for a release file.

argv: options JSON, a directory: ``stopping`` is written once the shutdown hook
runs (the daemon is stopping, its threads still logging); the hook returns when
``release`` appears there.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path

import structlog

import aiodaemon

options = json.loads(sys.argv[1])
marks = Path(sys.argv[2])


def flood(name: str) -> None:
    log = structlog.get_logger(name)
    n = 0
    while True:
        log.info("n", n=n)
        n += 1


@aiodaemon.on_shutdown
async def held() -> None:
    (marks / "stopping").write_text("1")
    while not os.path.exists(marks / "release"):  # noqa: ASYNC110 (a file another process writes)
        await asyncio.sleep(0.02)


async def main(ctx: aiodaemon.Context) -> None:
    for k in range(3):
        threading.Thread(target=flood, args=(f"flood{k}",), daemon=True).start()
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
