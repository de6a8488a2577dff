"""A program that uses up its descriptors before calling run(), leaving argv[2] of them.

argv: options JSON, how many descriptors to leave free, the RLIMIT_NOFILE to set (soft and hard).
"""

from __future__ import annotations

import json
import os
import resource
import sys

import aiodaemon

options = json.loads(sys.argv[1])
left, limit = int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
for _ in range(left):
    os.close(held.pop())


async def main(ctx: aiodaemon.Context) -> None:
    print("main ran", flush=True)


aiodaemon.run(main, **options)
