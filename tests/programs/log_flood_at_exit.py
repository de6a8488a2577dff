"""A daemon whose worker thread logs numbered records flat out until the process ends.

argv[1]: the log file. ``main`` returns once the thread has logged 10,000
records: the daemon stops while the thread goes on logging, through the drain
of the queue and past it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

import aiodaemon

going = threading.Event()


def flood() -> None:
    log = logging.getLogger("flood")
    n = 0
    while True:
        log.warning("n", extra={"n": n})
        n += 1
        if n == 10_000:
            going.set()


async def main() -> None:
    threading.Thread(target=flood, name="flood", daemon=True).start()
    await asyncio.to_thread(going.wait)


aiodaemon.run(main, detach=False, log_file=sys.argv[1])
