"""Gives ``aiodaemon.run()`` again the coroutine object its first run awaited.

argv: the second (detached) run's pidfile, the first run's log file.
"""

from __future__ import annotations

import sys

import aiodaemon


async def work() -> None:
    pass


coroutine = work()
try:
    aiodaemon.run(coroutine, detach=False, log_file=sys.argv[2])
except SystemExit as exc:
    print(f"first run ended {exc.code}", flush=True)
aiodaemon.run(coroutine, detach=True, pidfile=sys.argv[1])
