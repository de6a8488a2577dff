"""A daemon whose log writer runs out of memory reopening at SIGUSR1; argv: options JSON, a marker.

Out of memory (``RLIMIT_AS``), any allocation of the writer thread may fail,
and where it strikes is chance: here it strikes the ``os.open`` of the reopen
(a profile hook of the program's threads raises ``MemoryError`` there, as the
call does when it cannot allocate). ``main`` then logs ``after`` records and
writes the marker.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from types import FrameType

import structlog

import aiodaemon

options = json.loads(sys.argv[1])
marker = sys.argv[2]
starved = threading.Event()


def _no_memory_for_open(frame: FrameType, event: str, arg: object) -> None:
    if event == "c_call" and arg is os.open and not starved.is_set():
        starved.set()
        raise MemoryError


threading.setprofile(_no_memory_for_open)


async def main(ctx: aiodaemon.Context) -> None:
    await asyncio.to_thread(starved.wait)
    for n in range(3):
        structlog.get_logger().info("after", n=n)
    with open(marker, "w"):
        pass
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
