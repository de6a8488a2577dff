"""A daemon that uses up every descriptor once it runs; argv: options JSON, a marker path.

main lowers its RLIMIT_NOFILE to 64, opens /dev/null until none is left, writes
the marker through the last free slot and takes that slot too: every
connection to its sockets is then accepted and dropped (libuv's EMFILE trick).
"""

from __future__ import annotations

import json
import os
import resource
import sys

import aiodaemon

options = json.loads(sys.argv[1])
marker = sys.argv[2]
held: list[int] = []


def fill() -> None:
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass


async def main(ctx: aiodaemon.Context) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    fill()
    os.close(held.pop())
    with open(marker, "w") as f:
        f.write("full")
    fill()
    await ctx.wait_stopping()
    for fd in held:
        os.close(fd)


aiodaemon.run(main, **options)
