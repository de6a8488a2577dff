"""A daemon whose reload hook waits until a release file appears.

argv: options JSON, the release file's path. While the hook waits, the daemon
is reloading: what ``upgrade`` (without a control socket) says then is the point.
With a third argument, the hook first forks a worker that sleeps a minute (a
pool restarted on reload) and writes its pid to that file.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiodaemon

options = json.loads(sys.argv[1])
release = sys.argv[2]


@aiodaemon.on_reload
async def held() -> None:
    if len(sys.argv) > 3:
        worker = os.fork()
        if worker == 0:
            time.sleep(60)
            os._exit(0)
        with open(sys.argv[3], "w") as f:
            f.write(str(worker))
    while not os.path.exists(release):  # noqa: ASYNC110 (a file another process writes)
        await asyncio.sleep(0.02)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
