"""A program that goes on after ``run()``: work after its ``SystemExit``, then a second ``run()``.

argv: options (JSON), record, seconds of work. The first ``main`` uses an
executor of the program's (left idle, never shut down) and returns; the
program then works for the given seconds (longer than the shutdown budget and
its grace) with thread pools, runs a second daemon whose ``main`` works as
long, records each step, and exits 0 by itself.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tests.programs.recorder import record, run

WORK = float(sys.argv[3])
POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="program-pool")


async def quick() -> None:
    """One call on the program's executor, then a graceful exit, status 0."""
    await asyncio.get_running_loop().run_in_executor(POOL, sum, [1, 2])


async def longer() -> None:
    """Works a while, then ends."""
    await asyncio.sleep(WORK)
    record(f"to_thread in run 2: {await asyncio.to_thread(sum, [2, 2])}")


for number, main in enumerate((quick, longer), 1):
    try:
        run(main)
    except SystemExit as exc:
        record(f"run {number} ended {exc.code}")
    if number == 1:
        time.sleep(WORK)  # a report to upload, logs to compress: after the daemon's end
        record(f"program's executor after run 1: {POOL.submit(sum, [3]).result()}")
        record(f"new executor after run 1: {ThreadPoolExecutor(1).submit(sum, [4]).result()}")
        record("work after run 1 done")
record("done")
