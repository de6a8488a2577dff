"""A program that goes on after ``run()``: work after its ``SystemExit``, then a second ``run()``.

argv: options (JSON), record, seconds of work. The first ``main`` returns at
once; the program then works for the given seconds (longer than the shutdown
budget and its grace), runs a second daemon whose ``main`` works as long,
records each step, and exits 0 by itself.
"""

from __future__ import annotations

import asyncio
import sys
import time

from tests.programs.recorder import record, run

WORK = float(sys.argv[3])


async def quick() -> None:
    """Ends at once: a graceful exit, status 0."""


async def longer() -> None:
    """Works a while, then ends."""
    await asyncio.sleep(WORK)


for number, main in enumerate((quick, longer), 1):
    try:
        run(main)
    except SystemExit as exc:
        record(f"run {number} ended {exc.code}")
    if number == 1:
        time.sleep(WORK)  # a report to upload, logs to compress: after the daemon's end
        record("work after run 1 done")
record("done")
