"""A daemon whose log writer runs out of memory at its first three reopens; argv: options JSON.

As in ``log_writer_starved``, the writer's ``os.open`` raises ``MemoryError``,
as the call does when it cannot allocate (here through a wrapper: a profile
hook that raises is removed by Python, and this strikes three times): the
first reopen fails twice (it is retried once, then given up), the next once.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import aiodaemon

options = json.loads(sys.argv[1])
failures = 0
real_open = os.open


def _no_memory_for_open(*args: Any, **kwargs: Any) -> int:
    global failures
    if threading.current_thread().name == "aiodaemon-log-writer" and failures < 3:
        failures += 1
        raise MemoryError
    return real_open(*args, **kwargs)


os.open = _no_memory_for_open


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
