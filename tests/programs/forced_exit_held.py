"""Hangs in a shutdown hook; its forced exit pauses where a third signal can reach it.

argv: options (JSON), record, release. The forced exit's last step (its line on
stderr) first records "forced exit" and waits for the file ``release``, so the
test can send another stop signal into that window, which under load is only
microseconds wide otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiodaemon
import aiodaemon._forced

RECORD, RELEASE = sys.argv[2], sys.argv[3]
say = aiodaemon._forced.say_nowait


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


def held_say(text: str) -> None:
    record("forced exit")
    deadline = time.monotonic() + 30
    # Signal handlers run between these sleeps, as they would between the steps.
    while not os.path.exists(RELEASE) and time.monotonic() < deadline:
        time.sleep(0.01)
    say(text)


aiodaemon._forced.say_nowait = held_say


@aiodaemon.on_shutdown
async def hang() -> None:
    record("stopping")
    await asyncio.Event().wait()


async def main(ctx: aiodaemon.Context) -> None:
    record("main running")
    await ctx.wait_stopping()


aiodaemon.run(main, **json.loads(sys.argv[1]))
