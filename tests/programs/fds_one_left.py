"""A daemon that leaves itself one free descriptor once it runs; argv: options JSON, a marker.

main lowers its RLIMIT_NOFILE to 64, opens /dev/null until none is left, and
gives one back: the control socket can take a connection, and nothing more
(a copy of it, say). It writes the marker through that slot, and gives the
rest back once stopping.
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


async def main(ctx: aiodaemon.Context) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    os.close(held.pop())
    with open(marker, "w") as f:
        f.write("one left")
    await ctx.wait_stopping()
    for fd in held:
        os.close(fd)


aiodaemon.run(main, **options)
