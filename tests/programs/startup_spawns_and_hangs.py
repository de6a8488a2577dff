"""A startup hook that spawns ``sleep 3600`` and then never returns, even when cancelled.

Copied as app.py; run with a ``listen=`` socket named "echo", which the sleep
is given (as a worker handed the listener would be). Its pid goes to
``sleep.pid`` beside app.py. A stop during the start cannot end the hook, so
the shutdown's budget runs out and the daemon's own forced exit ends it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess

import aiodaemon

HERE = os.path.dirname(os.path.abspath(__file__))


@aiodaemon.on_startup
async def spawn_and_hang(ctx: aiodaemon.Context) -> None:
    child = subprocess.Popen(["sleep", "3600"], pass_fds=[ctx.sockets["echo"].fileno()])
    with open(os.path.join(HERE, "sleep.pid.tmp"), "w") as f:
        f.write(str(child.pid))
    os.rename(os.path.join(HERE, "sleep.pid.tmp"), os.path.join(HERE, "sleep.pid"))
    while True:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            continue  # deaf to the stop: only the forced exit ends the start


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
