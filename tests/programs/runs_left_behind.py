"""Calls ``aiodaemon.run()`` in the foreground COUNT times, then prints what the runs left alive.

argv: a directory (each run's pidfile and log file go there), COUNT. Prints the
number of log writers, pidfiles and event loops still reachable after a
collection: what each finished run leaves referenced for the process's life.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

import aiodaemon
from aiodaemon._logs._logwriter import LogWriter
from aiodaemon._prefork._pidfile import Pidfile


async def main() -> None:
    pass


directory, count = Path(sys.argv[1]), int(sys.argv[2])
for i in range(count):
    try:
        aiodaemon.run(
            main, detach=False, pidfile=directory / f"{i}.pid", log_file=directory / f"{i}.jsonl"
        )
    except SystemExit as exc:
        if exc.code != 0:
            raise
gc.collect()
alive = gc.get_objects()
print(
    sum(isinstance(o, LogWriter) for o in alive),
    sum(isinstance(o, Pidfile) for o in alive),
    sum(isinstance(o, asyncio.AbstractEventLoop) for o in alive),
)
