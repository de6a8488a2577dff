"""A daemon that ran a short thread of its own; argv: options JSON, a marker path.

``main`` starts a thread and joins it (its stack stays cached for the next
thread the process creates), writes the marker, and waits for the stop. The
test then lowers its ``RLIMIT_AS`` below what it uses: a new thread still gets
a stack (the cached one), but Python cannot allocate what the thread needs to
begin.
"""

from __future__ import annotations

import json
import sys
import threading

import aiodaemon

options = json.loads(sys.argv[1])
marker = sys.argv[2]


async def main(ctx: aiodaemon.Context) -> None:
    helper = threading.Thread(target=lambda: None)
    helper.start()
    helper.join()
    with open(marker, "w"):
        pass
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
