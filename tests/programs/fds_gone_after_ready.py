"""A daemon that uses up every descriptor once it runs; argv: options JSON, a marker path[, a gate].

main lowers its RLIMIT_NOFILE to 64, opens /dev/null until none is left, writes
the marker through the last free slot and takes that slot too: every
connection to its sockets is then accepted and dropped (libuv's EMFILE trick).
Without a gate it gives them back once stopping. With one it never does: out
of descriptors for its whole shutdown, whose hook logs ``shutdown hook waits``
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
marker = sys.argv[2]
gate = sys.argv[3] if len(sys.argv) > 3 else None
held: list[int] = []


def fill() -> None:
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass


if gate is not None:
    gate_file = gate

    @aiodaemon.on_shutdown
    async def wait_for_gate() -> None:
        structlog.get_logger().info("shutdown hook waits", free=0)
        while not os.path.exists(gate_file):  # noqa: ASYNC110 (a file the test writes)
            await asyncio.sleep(0.02)


async def main(ctx: aiodaemon.Context) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    fill()
    os.close(held.pop())
    with open(marker, "w") as f:
        f.write("full")
    fill()
    await ctx.wait_stopping()
    if gate is None:
        for fd in held:
            os.close(fd)


aiodaemon.run(main, **options)
