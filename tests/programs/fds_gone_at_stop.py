"""A daemon out of descriptors for its whole shutdown; argv: options JSON, a marker, a gate.

main lowers its RLIMIT_NOFILE to 64 and opens /dev/null until none is left
(writing the marker through the last free slot first), then waits for the
stop; it never gives them back. Its shutdown hook logs ``shutdown hook waits``
and waits for the gate file, so the test decides how long the shutdown lasts.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys

import structlog

import aiodaemon

options = json.loads(sys.argv[1])
marker, gate = sys.argv[2], sys.argv[3]
held: list[int] = []


def fill() -> None:
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass


@aiodaemon.on_shutdown
async def wait_for_gate() -> None:
    structlog.get_logger().info("shutdown hook waits", free=0)
    while not os.path.exists(gate):  # noqa: ASYNC110 (a file the test writes)
        await asyncio.sleep(0.02)


async def main(ctx: aiodaemon.Context) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    fill()
    os.close(held.pop())
    with open(marker, "w") as f:
        f.write("full")
    fill()
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
