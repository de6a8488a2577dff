"""A startup hook that never returns, and a shutdown hook held until a release file appears.

argv: options JSON, the release file's path. With a short ``start_timeout`` the
launcher stops the daemon, and waits for it while the shutdown hook is held.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiodaemon

options = json.loads(sys.argv[1])
release = sys.argv[2]


@aiodaemon.on_startup
async def warm_up() -> None:
    await asyncio.Event().wait()


@aiodaemon.on_shutdown
async def held() -> None:
    while not os.path.exists(release):  # noqa: ASYNC110 (a file another process writes)
        await asyncio.sleep(0.02)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
